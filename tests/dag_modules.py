"""Module types for the DAG parser and validator tests.

The tests register them with ``make_orch(*MODULES, policies=POLICIES)``; the CLI tests
load this same file with ``pentora dag validate --hooks tests/dag_modules.py``, which
calls ``pentora_register_modules`` below. None of them does any work: validation never
runs a module.
"""

from __future__ import annotations

import random
from typing import Any

import voluptuous as vol
from voluptuous import Optional, Required

import pentora
from pentora import Module, RetryPolicy, RetrySpec
from pentora.schema import Duration, PositiveInt


class Step(Module):
    """Reads and writes nothing: a stage whose data does not matter to the test."""

    module_type = "step"


class Producer(Module):
    """Writes banners (what a banner grabber would)."""

    module_type = "producer"
    produces = ("banners",)


class Consumer(Module):
    """Reads banners (what a fingerprinter would)."""

    module_type = "consumer"
    requires = ("banners",)


class HostLister(Module):
    """Writes hosts: something for ``for_each`` to map over."""

    module_type = "host_lister"
    produces = ("hosts",)


class Configured(Module):
    """A config schema given as a dict: a Duration, a required int, a list and a mapping."""

    module_type = "configured"
    config_schema = {
        Optional("timeout", default="2s", description="per-probe timeout"): Duration(),
        Required("retries", description="attempts per port"): PositiveInt(),
        Optional("ports", default=[80], description="ports to probe"): [int],
        Optional("probe", default={}, description="probe settings"): {
            Optional("size", default=64, description="payload bytes"): int,
        },
    }


class SchemaConfigured(Module):
    """A config schema given as a ``voluptuous.Schema`` object rather than a dict."""

    module_type = "schema_configured"
    config_schema = vol.Schema({
        Optional("timeout", default="2s", description="per-probe timeout"): Duration(),
        Optional("count", default=1, description="how many probes"): int,
    })


MODULES: tuple[type[Module], ...] = (Step, Producer, Consumer, HostLister, Configured,
                                     SchemaConfigured)


def _no_wait(attempt: int, spec: RetrySpec, rng: random.Random) -> float:
    return 0.0


# The core registers no retry policy itself; these stand in for the built-in plugin's.
POLICIES: tuple[RetryPolicy, ...] = tuple(
    RetryPolicy(name, f"test stand-in for '{name}'", _no_wait)
    for name in ("exponential", "fixed", "none")
)


@pentora.hookimpl
def pentora_register_modules(registry: Any) -> None:
    for cls in MODULES:
        registry.register(cls)
