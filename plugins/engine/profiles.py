"""Ships the built-in DAG profiles (``--profile NAME``)."""

from __future__ import annotations

import importlib.resources

from pentora import hookimpl


@hookimpl
def pentora_profile_dirs() -> list[str]:
    return [str(importlib.resources.files("pentora_dags"))]


@hookimpl
def pentora_default_profiles() -> list[str]:
    """``pentora scan`` without ``--profile`` or ``--dag``: the fullest profile installed."""
    return ["standard", "service-scan", "port-scan"]
