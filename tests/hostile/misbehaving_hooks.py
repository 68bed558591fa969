"""Notification hooks that exit or raise a BaseException (for ``--hooks``)."""

from __future__ import annotations

import sys
from typing import Any

import pentora


@pentora.hookimpl
def pentora_node_complete(node: Any) -> None:
    if node.instance_id == "first":
        sys.exit(4)


@pentora.hookimpl
def pentora_node_start(node: Any) -> None:
    if node.instance_id == "second":
        raise BaseException("a hook raised a BaseException")
