"""Loss-aware rate steering for stateless raw sweeps."""

from __future__ import annotations

from dataclasses import dataclass

# The SYN scanner's steering, its values too: a discovery reply costs the receiver what
# a SYN scan's does.
STEER_EVERY = 0.05              # seconds between two looks at the receivers during a pass:
                                # a cut needs that long to show in the drop counter
BACKLOG_HIGH, BACKLOG_LOW = 0.25, 0.05  # receive buffer fill that lowers / allows raising the rate
STEADY = 0.5                    # seconds of a near-empty buffer before the rate goes up
EXTRA_TRIES = 8                 # tries beyond `retry` while replies are likely still lost
LOST_LEFT = 0.001               # ... that is, while more hosts than this are expected lost
MIN_EVIDENCE = 100              # answers to a retry that are enough to judge the rate by
LOSS_EVIDENCE = 0.01            # share of a retry's probes answered that means loss, not slowness


@dataclass
class PassState:
    """What ``StatelessSweep._steer`` compares with during one pass."""

    drops: int            # the receivers' drop count at the last look
    since: float          # the time of the last look
    sent: int = 0         # probes sent by then
    backlog: float = 0.0  # how full the fullest receive buffer was
    calm: float = 0.0     # when the rate last changed
    cuts: int = 0


class LossEstimate:
    """How many of a chunk's silent hosts are likely answering hosts whose probe or reply
    was lost, from the answers of each try (the SYN scanner's estimate, by host).

    On a path that loses a share p of the tries, each retry gets about p times the answers
    of the one before (p estimated from all the tries so far); the answers still to come
    add up to a·p/(1-p). A try with no answer keeps the estimate, times p; a first retry
    with no answer: no loss."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.share = 0.0
        self.left = 0.0

    def after(self, answered: int) -> float:
        self.answers.append(answered)
        if len(self.answers) == 1:
            return 0.0
        earlier = sum(self.answers[:-1])
        self.share = min(0.9, sum(self.answers[1:]) / earlier) if earlier else 0.5
        self.left = answered * self.share / (1 - self.share) if answered else self.left * self.share
        return self.left
