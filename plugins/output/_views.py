"""What every view of the findings shares: ``--min-quality`` and ``--fail-on``.

A finding counts (in the summary, the severity counts, each report's findings and the
exit status of ``--fail-on``) when its quality of detection is at least ``--min-quality``
(``kit.quality``, default 70); the others are listed apart as unverified. The writers
read the threshold from the scan's options (``min_quality``, set through
``pentora_cli_scan_options``) or, replaying a JSONL, from ``pentora report``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from pentora_plugins.kit import quality
from pentora_plugins.kit.findings import SEVERITIES

OPTION = "min_quality"  # the scan option (scan.options) the writers read


def _min_quality(text: str) -> int:
    try:
        return quality.check_min_quality(text)
    except ValueError as e:
        # argparse names the option: "argument --min-quality: expected a quality ..."
        raise argparse.ArgumentTypeError(f"{e}; 70 (the default) counts a version read from a "
                                         "banner, 0 counts every finding") from None


def add_options(parser: argparse.ArgumentParser, fail_on: bool = True) -> None:
    """``--min-quality`` (and ``--fail-on``) on a command that shows findings."""
    parser.add_argument(
        "--min-quality", type=_min_quality, default=quality.DEFAULT_MIN_QUALITY, metavar="N",
        help=f"count findings of quality N (0-100) or more (default {quality.DEFAULT_MIN_QUALITY}); "
             "the others are listed apart as unverified (a backport may have fixed them)")
    if fail_on:
        parser.add_argument(
            "--fail-on", type=str.lower, choices=tuple(reversed(SEVERITIES)), metavar="SEVERITY",
            help="exit 5 when a verified finding of SEVERITY or worse was made "
                 "(critical, high, medium, low, info)")


def min_quality_of(options: Any) -> int:
    """The threshold a scan's options (or any mapping) give; the default when they give none."""
    value = (options or {}).get(OPTION) if isinstance(options, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else \
        quality.DEFAULT_MIN_QUALITY


def severity_at_least(severity: Any, floor: str) -> bool:
    """Whether ``severity`` (any case; unknown counts as info) is ``floor`` or worse."""
    s = str(severity or "info").lower()
    rank = SEVERITIES.index(s) if s in SEVERITIES else 0
    return rank >= SEVERITIES.index(floor)


def failing(vulns: Iterable[Any], min_quality: int, fail_on: str) -> list[Any]:
    """The verified findings of severity ``fail_on`` or worse: what ``--fail-on`` exits 5 for."""
    verified, _ = quality.split(vulns, min_quality)
    return [v for v in verified if severity_at_least(_get(v, "severity"), fail_on)]


def gate(vulns: Iterable[Any], min_quality: int, fail_on: str | None) -> int | None:
    """``--fail-on``: ``EXIT_FINDINGS`` (5), said on stderr, when a verified finding of
    ``fail_on`` or worse is among ``vulns``; None otherwise (or without ``--fail-on``)."""
    if not fail_on:
        return None
    from pentora.cli import EXIT_FINDINGS, echo

    found = {(_get(v, "host"), _get(v, "port"), _get(v, "id")) for v in failing(vulns, min_quality, fail_on)}
    if not found:
        return None
    echo(f"{len(found)} verified finding(s) of severity {fail_on} or worse (--fail-on {fail_on}, "
         f"quality >= {min_quality}): exit {EXIT_FINDINGS}", err=True)
    return EXIT_FINDINGS


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
