"""Loss-aware rate steering for stateless raw sweeps (the SYN scanner, raw discovery).

A stateless sweep sends faster than its replies can always be taken in. Lost replies show
two ways: the receive sockets' drop counters and buffer fill during a pass, and a retry
answered by hosts that were silent on the try before (their probe or reply was lost).
``RateSteering`` turns both into the sending rate (an ``AdaptiveRate``) and into the
decision whether another try is worth sending; ``LossEstimate`` is what the answers of
each try say is still lost. Both are pure logic: the user feeds them counters and times,
and keeps what is its own (how it reads its receivers, how it sets its senders' rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from pentora_plugins.kit.net.ratelimit import AdaptiveRate

STEER_EVERY = 0.05              # seconds between two looks at the receivers during a pass:
                                # a cut needs that long to show in the drop counter
BACKLOG_HIGH, BACKLOG_LOW = 0.25, 0.05  # receive buffer fill that lowers / allows raising the rate
STEADY = 0.5                    # seconds of a near-empty buffer before the rate goes up
EXTRA_TRIES = 8                 # tries beyond the configured ones while replies are likely still lost
LOST_LEFT = 0.001               # ... that is, while more than this many are expected lost
MIN_EVIDENCE = 100              # answers to a retry that are enough to judge the rate by
LOSS_EVIDENCE = 0.01            # share of a retry's probes answered that means loss, not filtering


class Log(Protocol):
    """The logger a sweep writes to (a node's ``ctx.log``): one formatted message a call."""

    def info(self, message: str) -> object: ...

    def debug(self, message: str) -> object: ...


@dataclass
class PassState:
    """What ``RateSteering.look`` compares with during one pass: the receivers at the
    last look."""

    drops: int            # the receivers' drop count at the last look
    since: float          # the time of the last look
    sent: int = 0         # probes sent by then
    backlog: float = 0.0  # how full the fullest receive buffer was
    calm: float = 0.0     # when the rate last changed
    cuts: int = 0         # cuts so far: the first is logged as news, the others as detail


class LossEstimate:
    """How many of the silent probes are likely answering ones whose probe or reply was
    lost, rather than filtered (or hosts down), from the answers of each try.

    On a path that loses a share p of the tries, each retry gets about p times the answers
    of the one before (p estimated from all the tries so far, so that a few replies do not
    swing it); the answers still to come add up to a·p/(1-p). A try with no answer keeps
    the estimate, times p: after a quiet retry some may still be lost, after several
    hardly any. A first retry with no answer: no loss."""

    def __init__(self) -> None:
        self.answers: list[int] = []  # the answers each try got
        self.share = 0.0  # the share of probes a try loses, as the answers suggest
        self.left = 0.0   # answering probes expected still unanswered, lost

    def after(self, answered: int) -> float:
        """A try got ``answered`` answers: the answers still expected (``left``)."""
        self.answers.append(answered)
        if len(self.answers) == 1:
            return 0.0
        earlier = sum(self.answers[:-1])
        self.share = min(0.9, sum(self.answers[1:]) / earlier) if earlier else 0.5
        self.left = answered * self.share / (1 - self.share) if answered else self.left * self.share
        return self.left


class Verdict(NamedTuple):
    """``RateSteering.after_try``'s decision: whether to send another try, and the rate
    for it (None: unchanged)."""

    again: bool
    rate: float | None


class RateSteering:
    """The rate of a sweep, steered by the replies it loses; one a scan, across its chunks.

    ``look`` (every ``STEER_EVERY`` of a pass) halves the rate when the receivers dropped
    replies or a receive buffer is filling, and raises it by a quarter after ``STEADY``
    seconds of nearly empty buffers. ``after_try`` (after each try's wait) halves it when
    a retry was answered beyond what the receivers' own drops explain, keeps it when a
    retry shows the path's own loss (about as much lost as before the last cut), raises
    it after a try that lost nothing, and says whether another try is worth sending:
    always within the configured ``tries``, beyond them (up to ``EXTRA_TRIES`` more, the
    caller's bound) while replies are likely still lost. ``name`` starts each log line."""

    def __init__(self, pace: AdaptiveRate, tries: int, name: str, log: Log) -> None:
        self.pace = pace
        self.tries = tries
        self.name = name
        self.log = log
        self.dropped = 0  # replies the receivers dropped, over all tries
        self.backoffs = 0  # times the rate was lowered
        self._dropped_before = 0  # drops during the chunk's previous try
        self._cut_in_pass = False  # the rate was lowered for drops during the last pass
        self._loss_at_cut: float | None = None  # the path's loss when a retry last cut the rate
        self._told_steady_loss = False

    @staticmethod
    def due(s: PassState, now: float) -> bool:
        """Whether a look is due: the caller reads its receivers only then."""
        return now - s.since >= STEER_EVERY

    def look(self, s: PassState, now: float, sent: int, drops: int, backlog: float) -> float | None:
        """A look during a pass, given the probes sent so far, the receivers' drop count
        and the fullest buffer's fill (0..1): the new rate, or None when unchanged (or
        no look is due). A buffer over BACKLOG_HIGH and growing means the receiver falls
        behind and would drop replies soon."""
        if not self.due(s, now):
            return None
        achieved = (sent - s.sent) / (now - s.since)
        rate: float | None = None
        if drops > s.drops or (backlog > BACKLOG_HIGH and backlog >= s.backlog):
            rate = self.pace.lost(achieved)
            why = (f"{drops - s.drops} replies dropped by the receive buffer" if drops > s.drops
                   else f"the receive buffer is {backlog:.0%} full")
            # the first cut is news; the steps after it, detail
            (self.log.debug if s.cuts else self.log.info)(
                f"{self.name}: {why}: rate lowered to {rate:,.0f}/s")
            s.cuts += 1
            self.backoffs += 1
            self._cut_in_pass = self._cut_in_pass or drops > s.drops
            s.calm = now
        elif backlog < BACKLOG_LOW and self.pace.rate and now - s.calm >= STEADY:
            rate = self.pace.clean()
            s.calm = now
        s.drops, s.since, s.sent, s.backlog = drops, now, sent, backlog
        return rate

    def after_try(self, k: int, sent: int, answered: int, dropped: int, achieved: float,
                  estimate: LossEstimate) -> Verdict:
        """After try ``k`` (0 the first) of a chunk and its wait: ``sent`` probes went out
        at ``achieved`` a second, ``answered`` were answered for the first time, the
        receivers dropped ``dropped`` replies; ``estimate`` is the chunk's.

        A retry's answers beyond the previous try's drops were lost on the way; the
        receiver's own drops say nothing of the path, so their answers do not count."""
        self.dropped += dropped
        unexplained = answered - self._dropped_before if k else 0
        self._dropped_before = dropped
        retried = sent and unexplained >= max(MIN_EVIDENCE, LOSS_EVIDENCE * sent)
        # the share of the previous try's replies this retry found lost: the path's loss
        loss = unexplained / estimate.answers[-1] if retried and estimate.answers[-1] else 0.0
        cut, self._cut_in_pass = self._cut_in_pass, False
        rate: float | None = None
        if retried and self._loss_at_cut is not None and loss >= 0.5 * self._loss_at_cut:
            # about as much lost as before the last cut (halving the rate of an overflowing
            # queue would have cut its loss by more): the path loses it whatever the rate
            # (a lossy link, not a queue overflowing), and slower would only take longer
            if not self._told_steady_loss:
                self._told_steady_loss = True
                self.log.info(f"{self.name}: replies lost (a retry got {answered} answers to "
                              f"{sent} probes): {loss:.0%} lost, as at a higher rate: the loss "
                              f"is not the rate's, keeping {self.pace.rate:,.0f}/s")
        elif retried or (dropped and not cut):  # drops seen during the pass were acted on then
            rate = self.pace.lost(achieved)
            self.backoffs += 1
            if retried:
                self._loss_at_cut = loss
            why = (f"a retry got {answered} answers to {sent} probes" if retried else
                   f"{dropped} replies dropped by the receive buffer")
            self.log.info(f"{self.name}: replies lost ({why}): rate lowered to {rate:,.0f}/s")
        elif not dropped and not unexplained:
            rate = self.pace.clean()
        lost = estimate.after(max(0, unexplained) if k else answered)
        return Verdict(k + 1 < self.tries or bool(dropped) or lost >= LOST_LEFT, rate)
