"""Quality of detection: how sure a finding is, on a 0-100 scale.

A version read from a banner is not proof: a distribution keeps the upstream version
while it backports the fix (Debian's ``OpenSSH_9.2p1 Debian-2+deb12u3`` is patched against
CVE-2024-6387). Each ``Vulnerability`` therefore says how it was established (``method``)
and how far that goes (``quality``), as Greenbone's Quality of Detection does:

==========================  =======  ==========================================================
method                      quality  what it means
==========================  =======  ==========================================================
``package``                 97       an exact installed package version, read by a
                                     credentialed check, below the distribution's fixed version
``active``                  95       a check that observed the flaw (anonymous FTP, a weak
                                     cipher accepted, a header missing)
``banner-distro``           90       a distribution package revision read from the banner,
                                     below that distribution's fixed version
``banner``                  80       an upstream version, on a host that shows no distribution
``banner-backport-prone``   30       an upstream version of a distribution's build that shows
                                     no revision: the distribution may have backported the fix
==========================  =======  ==========================================================

Default views (the summary, the severity counts, the findings of every report, the exit
status of ``--fail-on``) count findings of quality ``DEFAULT_MIN_QUALITY`` (70) or more;
the others are listed apart as unverified. A record without a quality (a plugin written
before the scale) counts as verified.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

PACKAGE = "package"
ACTIVE = "active"
BANNER_DISTRO = "banner-distro"
BANNER = "banner"
BANNER_BACKPORT_PRONE = "banner-backport-prone"

QUALITY: dict[str, int] = {
    PACKAGE: 97,
    ACTIVE: 95,
    BANNER_DISTRO: 90,
    BANNER: 80,
    BANNER_BACKPORT_PRONE: 30,
}
METHODS = tuple(QUALITY)
# Why a finding of each method may be wrong, in a few words: what a list of unverified
# findings shows, where the evidence (which starts with the version matched) would be cut
# before it says why.
WHY: dict[str, str] = {
    PACKAGE: "installed package version below the distribution's fix",
    ACTIVE: "observed by a check",
    BANNER_DISTRO: "package revision read from the banner",
    BANNER: "upstream version read from a banner",
    BANNER_BACKPORT_PRONE: "distribution build without its revision: a backport may fix it",
}
DEFAULT_MIN_QUALITY = 70
UNVERIFIED_TITLE = "unverified: may be fixed by a backport"

T = TypeVar("T")


def quality_of(record: Any) -> int | None:
    """The record's quality (a record object or its dict); None when it states none."""
    value = record.get("quality") if isinstance(record, dict) else getattr(record, "quality", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def is_verified(record: Any, min_quality: int = DEFAULT_MIN_QUALITY) -> bool:
    """Whether a finding counts in default views: quality at least ``min_quality``, or none stated."""
    q = quality_of(record)
    return q is None or q >= min_quality


def split(records: Iterable[T], min_quality: int = DEFAULT_MIN_QUALITY) -> tuple[list[T], list[T]]:
    """(verified, unverified) in the given order."""
    verified: list[T] = []
    unverified: list[T] = []
    for r in records:
        (verified if is_verified(r, min_quality) else unverified).append(r)
    return verified, unverified


def check_min_quality(value: object) -> int:
    """A threshold 0-100 (from the command line or a config); ValueError naming the range."""
    try:
        n = int(str(value), 10)
    except ValueError:
        raise ValueError(f"expected a quality from 0 to 100, got {value!r}") from None
    if not 0 <= n <= 100:
        raise ValueError(f"expected a quality from 0 to 100, got {n}")
    return n
