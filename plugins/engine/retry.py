"""Retry policies: ``exponential`` (1s, 2s, 4s…), ``fixed`` and ``none``."""

from __future__ import annotations

import random

from pentora import Registry, RetryPolicy, RetrySpec, hookimpl


def _jittered(delay: float, spec: RetrySpec, rng: random.Random) -> float:
    if spec.jitter:
        delay *= rng.uniform(1 - spec.jitter, 1 + spec.jitter)
    return delay


def exponential(attempt: int, spec: RetrySpec, rng: random.Random) -> float:
    """``initial × 2^(attempt-1)``, capped at ``max``, then jittered."""
    delay = spec.initial * (2 ** (attempt - 1))
    if spec.max is not None:
        delay = min(delay, spec.max)
    return _jittered(delay, spec, rng)


def fixed(attempt: int, spec: RetrySpec, rng: random.Random) -> float:
    """``initial`` every time, jittered."""
    return _jittered(spec.initial, spec, rng)


def none(attempt: int, spec: RetrySpec, rng: random.Random) -> float:
    """Retry at once."""
    return 0.0


POLICIES = (
    RetryPolicy("exponential", "wait initial × 2^(n-1) (1s, 2s, 4s…), capped at max", exponential),
    RetryPolicy("fixed", "wait initial between attempts", fixed),
    RetryPolicy("none", "retry immediately, no wait", none),
)


@hookimpl
def pentora_register_retry_policies(registry: Registry) -> None:
    for policy in POLICIES:
        registry.register_retry_policy(policy)
