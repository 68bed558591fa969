"""``kit.net.steer``: the rate steering the SYN scanner and raw discovery share, fed
counters and times as their receivers and tries would give them."""

from __future__ import annotations

import pytest
from pentora_plugins.kit.net.ratelimit import AdaptiveRate
from pentora_plugins.kit.net.steer import (
    BACKLOG_HIGH,
    EXTRA_TRIES,
    LOST_LEFT,
    STEADY,
    STEER_EVERY,
    LossEstimate,
    PassState,
    RateSteering,
)


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(f"info {message}")

    def debug(self, message: str) -> None:
        self.lines.append(f"debug {message}")


def steering(rate: float = 40000, tries: int = 2) -> tuple[RateSteering, _Log]:
    log = _Log()
    return RateSteering(AdaptiveRate(rate), tries, "probe_module", log), log


# -- LossEstimate ------------------------------------------------------------------------

def test_loss_estimate_of_a_clean_path_is_nothing() -> None:
    clean = LossEstimate()
    assert [clean.after(a) for a in (800, 0)] == [0.0, 0.0]  # silent means filtered or down
    assert clean.share == 0.0


def test_loss_estimate_follows_a_path_that_loses_a_fifth() -> None:
    lossy = LossEstimate()  # each retry gets a fifth of the answers of the one before
    left = [lossy.after(a) for a in (800, 160, 32, 6, 1, 0, 0, 0, 0)]
    assert left[0] == 0.0 and lossy.share == pytest.approx(1 / 5, rel=0.05)
    assert left[1] == pytest.approx(40) and left[2] == pytest.approx(8, rel=0.05)
    # a quiet retry does not end it (a reply may still be lost), several do
    assert min(left[5:8]) > LOST_LEFT > left[-1]
    assert all(a >= b for a, b in zip(left[1:], left[2:], strict=False))
    assert lossy.answers == [800, 160, 32, 6, 1, 0, 0, 0, 0]


def test_loss_estimate_bounds_the_share_below_one() -> None:
    odd = LossEstimate()  # a retry answered more than the first try: capped, not infinite
    odd.after(10)
    assert odd.after(50) == pytest.approx(50 * 0.9 / 0.1)
    assert odd.share == 0.9
    nothing_first = LossEstimate()
    nothing_first.after(0)
    assert nothing_first.after(5) == pytest.approx(5.0) and nothing_first.share == 0.5


# -- look: during a pass -----------------------------------------------------------------

def test_look_waits_for_its_interval() -> None:
    steer, log = steering()
    s = PassState(drops=0, since=100.0)
    assert not steer.due(s, 100.0 + STEER_EVERY / 2)
    assert steer.look(s, 100.0 + STEER_EVERY / 2, sent=500, drops=50, backlog=0.9) is None
    assert steer.pace.rate == 40000 and s.since == 100.0 and not log.lines  # nothing seen yet


def test_look_halves_the_rate_on_drops_and_tells_the_first_cut_only_as_news() -> None:
    steer, log = steering()
    s = PassState(drops=7, since=100.0)
    # half the 30,000/s achieved since the last look
    assert steer.look(s, 100.1, sent=3000, drops=20, backlog=0.0) == pytest.approx(15000)
    assert log.lines == ["info probe_module: 13 replies dropped by the receive buffer: "
                         "rate lowered to 15,000/s"]
    assert (s.drops, s.since, s.sent, s.cuts, s.calm) == (20, 100.1, 3000, 1, 100.1)
    assert steer.look(s, 100.2, sent=4500, drops=21, backlog=0.0) == pytest.approx(7500)
    assert log.lines[-1].startswith("debug probe_module: 1 replies dropped")
    assert steer.backoffs == 2 and steer.dropped == 0  # drops are counted per try, by after_try


def test_look_cuts_for_a_filling_buffer_not_for_a_draining_one() -> None:
    steer, log = steering()
    s = PassState(drops=0, since=100.0, backlog=0.5)
    # over BACKLOG_HIGH but emptying: the receiver is catching up
    assert steer.look(s, 100.1, sent=1000, drops=0, backlog=0.4) is None
    # over BACKLOG_HIGH and growing: it falls behind, drops would follow
    assert steer.look(s, 100.2, sent=2000, drops=0, backlog=BACKLOG_HIGH + 0.2) == pytest.approx(5000)
    assert "the receive buffer is 45% full: rate lowered to 5,000/s" in log.lines[-1]


def test_look_raises_the_rate_after_a_calm_period_up_to_the_ceiling() -> None:
    steer, _ = steering(rate=10000)
    steer.pace.rate = 8000
    s = PassState(drops=0, since=100.0, calm=100.0)
    assert steer.look(s, 100.1, sent=800, drops=0, backlog=0.0) is None  # calm, not long enough
    assert steer.look(s, 100.0 + STEADY, sent=4000, drops=0, backlog=0.0) == 10000  # 8,000 + a quarter
    assert s.calm == 100.0 + STEADY
    assert steer.look(s, 100.0 + 2 * STEADY, sent=9000, drops=0, backlog=0.0) == 10000  # the ceiling


def test_look_leaves_an_unlimited_rate_unlimited_until_a_loss() -> None:
    steer, _ = steering(rate=0)
    s = PassState(drops=0, since=100.0)
    assert steer.look(s, 101.0, sent=80000, drops=0, backlog=0.0) is None
    # half the 80,000/s achieved since the last look
    assert steer.look(s, 101.1, sent=88000, drops=3, backlog=0.0) == pytest.approx(40000)


# -- after_try: between tries ------------------------------------------------------------

def test_a_clean_first_try_raises_the_rate_and_the_configured_retry_is_sent() -> None:
    steer, _ = steering(rate=40000)
    steer.pace.rate = 20000
    estimate = LossEstimate()
    verdict = steer.after_try(0, sent=1000, answered=300, dropped=0, achieved=20000, estimate=estimate)
    assert verdict.again and verdict.rate == 25000
    # the retry: nothing answered, nothing dropped: no further try
    verdict = steer.after_try(1, sent=700, answered=0, dropped=0, achieved=25000, estimate=estimate)
    assert not verdict.again
    assert estimate.answers == [300, 0]


def test_retries_answered_beyond_the_drops_cut_the_rate_then_keep_it_for_a_lossy_path() -> None:
    steer, log = steering(rate=40000, tries=2)
    estimate = LossEstimate()
    steer.after_try(0, sent=10000, answered=4000, dropped=0, achieved=40000, estimate=estimate)
    # a fifth of the replies came on the retry: lost the first time, the rate is cut
    verdict = steer.after_try(1, sent=6000, answered=800, dropped=0, achieved=40000, estimate=estimate)
    assert verdict.rate == 20000 and verdict.again  # 160 still likely lost
    assert log.lines[-1] == ("info probe_module: replies lost (a retry got 800 answers to 6000 probes): "
                             "rate lowered to 20,000/s")
    # the next retry finds as large a share lost at half the rate: the path's loss, kept
    verdict = steer.after_try(2, sent=5200, answered=160, dropped=0, achieved=20000, estimate=estimate)
    assert verdict.rate is None and steer.pace.rate == 20000 and verdict.again
    assert "20% lost, as at a higher rate: the loss is not the rate's, keeping 20,000/s" in log.lines[-1]
    steer.after_try(3, sent=5040, answered=800, dropped=0, achieved=20000, estimate=estimate)
    assert sum("not the rate's" in line for line in log.lines) == 1  # told once
    assert steer.backoffs == 1


def test_a_retry_with_few_answers_is_no_evidence_of_loss() -> None:
    steer, _ = steering(rate=40000, tries=2)
    estimate = LossEstimate()
    steer.after_try(0, sent=100000, answered=50000, dropped=0, achieved=40000, estimate=estimate)
    # 60 answers to 50,000 probes: fewer than MIN_EVIDENCE and the share that means loss
    verdict = steer.after_try(1, sent=50000, answered=60, dropped=0, achieved=40000, estimate=estimate)
    assert verdict.rate is None and steer.backoffs == 0
    assert verdict.again  # but the replies may still be lost: tried again


def test_answers_the_receivers_own_drops_explain_do_not_count_as_loss() -> None:
    steer, log = steering(rate=40000, tries=1)
    estimate = LossEstimate()
    # the first try: 500 replies dropped by our own buffer, and no cut during the pass
    verdict = steer.after_try(0, sent=10000, answered=4000, dropped=500, achieved=40000, estimate=estimate)
    assert verdict.rate == 20000 and verdict.again  # beyond the one configured try: drops
    assert "500 replies dropped by the receive buffer" in log.lines[-1]
    # the retry's 500 answers are those dropped replies: no loss of the path, no cut; a
    # try that lost nothing raises the rate again
    verdict = steer.after_try(1, sent=6000, answered=500, dropped=0, achieved=20000, estimate=estimate)
    assert verdict.rate == 25000 and not verdict.again
    assert steer.dropped == 500 and steer.backoffs == 1


def test_drops_already_acted_on_during_the_pass_are_not_cut_for_twice() -> None:
    steer, _ = steering(rate=40000, tries=1)
    s = PassState(drops=0, since=100.0)
    assert steer.look(s, 100.1, sent=4000, drops=30, backlog=0.0) == 20000
    verdict = steer.after_try(0, sent=9000, answered=3000, dropped=30, achieved=30000,
                              estimate=LossEstimate())
    assert verdict.rate is None and steer.pace.rate == 20000 and verdict.again
    # the next try's drops, with no cut in its pass: acted on now
    verdict = steer.after_try(1, sent=6000, answered=30, dropped=5, achieved=20000,
                              estimate=LossEstimate())
    assert verdict.rate == 10000


def test_further_tries_stop_when_the_estimate_says_nothing_is_left() -> None:
    steer, _ = steering(rate=40000, tries=2)
    estimate = LossEstimate()
    # a tenth lost each try: a tenth of the answers again on each retry, then silence
    answers = [8000, 800, 80, 8, 1, 0, 0, 0, 0, 0, 0, 0]
    verdicts = [steer.after_try(k, sent=10000, answered=a, dropped=0, achieved=40000,
                                estimate=estimate).again for k, a in enumerate(answers)]
    quiet = verdicts[4:].index(False)  # the try answered last, then quiet ones until the end
    assert all(verdicts[:4]) and 1 < quiet < 6
    assert len(answers[:4 + quiet + 1]) <= 2 + EXTRA_TRIES  # within the callers' bound
