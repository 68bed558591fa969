"""What distributions say of a CVE in their own packages: fixed in which version, or not affected.

A distribution keeps the upstream version of a package while it backports fixes, so the
question "is this build vulnerable?" is answered by the distribution's advisory, in its
own version order (``kit.distver``): Debian's ``openssh`` in bookworm (12) is fixed
against CVE-2024-6387 in ``1:9.2p1-2+deb12u3`` (DSA-5724-1), whatever the upstream
version says.

A ``DistroFix`` is one such statement, for one (distribution, release, source package,
CVE). Distributions are named by their ``kit.distro`` id of the distribution whose
packages they ship (``debian``, ``ubuntu``, ``rhel``, ``alpine``), releases by number
(``12``, ``22.04``, ``9``, ``3.19``): the Debian Security Tracker's codenames and OSV's
``Debian:12`` / ``Ubuntu:22.04:LTS`` / ``Alpine:v3.19`` meet there. ``FixIndex`` holds
them, looked up per package, and keeps, for a CVE named twice, the statement of the later
source (a downloaded feed is newer than the built-in catalog).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pentora_plugins.kit import distver

Status = Literal["fixed", "not-affected", "vulnerable"]
STATUSES: tuple[Status, ...] = ("fixed", "not-affected", "vulnerable")

# The version order of each distribution's packages (kit.distver's ecosystems).
ECOSYSTEM = {"debian": "deb", "ubuntu": "deb", "rhel": "rpm", "fedora": "rpm", "amazon": "rpm",
             "suse": "rpm", "alpine": "apk"}

PackageKey = tuple[str, str, str]  # (distribution, release, source package)

# What a feed may name, bounded: feeds are read as untrusted text.
CVE_ID = re.compile(r"CVE-\d{4}-\d{4,12}", re.ASCII)
PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}", re.ASCII)
# The severity words of distributions' trackers (Debian's urgency, OSV's labels).
SEVERITIES = {"critical": "critical", "high": "high", "important": "high", "medium": "medium",
              "moderate": "medium", "low": "low", "negligible": "low", "unimportant": "low"}


@dataclass(frozen=True)
class DistroFix:
    """One distribution's statement about one CVE in one release's source package.

    ``fixed`` is the first package version carrying the fix (status ``fixed``); None with
    ``not-affected`` (the release never shipped the flaw: too old, or built without the
    code) and with ``vulnerable`` (no fix released yet). ``advisory`` names the source
    (``DSA-5724-1``, ``USN-6859-1``, a URL); ``title`` and ``severity`` are the
    distribution's words when the CVE is not otherwise in the catalog."""

    cve: str
    distribution: str
    release: str
    package: str
    status: Status
    fixed: str | None = None
    advisory: str = ""
    source: str = ""
    title: str = ""
    severity: str | None = None

    @property
    def key(self) -> PackageKey:
        return (self.distribution, self.release, self.package)

    def covers(self, version: str) -> bool | None:
        """Whether package ``version`` carries the fix (True), lacks it (False), or the
        statement cannot say (None: a version the distribution's order refuses)."""
        if self.status == "not-affected":
            return True
        if self.status == "vulnerable" or self.fixed is None:
            return False
        ecosystem = ECOSYSTEM.get(self.distribution)
        if ecosystem is None:
            return None
        try:
            return distver.compare(ecosystem, version, self.fixed) >= 0
        except distver.VersionError:
            return None


class FixIndex:
    """``DistroFix`` statements by (distribution, release, source package), then CVE."""

    def __init__(self, fixes: Iterable[DistroFix] = ()) -> None:
        self._by_package: dict[PackageKey, dict[str, DistroFix]] = {}
        self._ordered: dict[PackageKey, _Ordered] = {}
        self.size = 0
        self.add(fixes)

    def add(self, fixes: Iterable[DistroFix]) -> None:
        """Add statements; one about a (package, CVE) already held replaces it."""
        self._ordered.clear()
        for fix in fixes:
            table = self._by_package.setdefault(fix.key, {})
            if fix.cve not in table:
                self.size += 1
            table[fix.cve] = fix

    def __iter__(self) -> Iterator[DistroFix]:
        for table in self._by_package.values():
            yield from table.values()

    def __len__(self) -> int:
        return self.size

    def package(self, distribution: str, release: str, package: str) -> dict[str, DistroFix]:
        """Every statement about the source package in that release, by CVE id."""
        return self._by_package.get((distribution, release, package), {})

    def get(self, distribution: str, release: str, package: str, cve: str) -> DistroFix | None:
        return self.package(distribution, release, package).get(cve)

    def open_for(self, distribution: str, release: str, package: str, version: str) -> list[DistroFix]:
        """The statements about the package that ``version`` does not satisfy: fixed in a
        later version, or not fixed at all (in CVE order). A bisection in the statements
        sorted by fixed version, not a walk over every CVE the package ever had."""
        key = (distribution, release, package)
        ordered = self._ordered.get(key)
        if ordered is None:
            ordered = self._ordered[key] = _Ordered(self.package(*key).values())
        return ordered.open_for(version)

    def releases(self) -> list[tuple[str, str]]:
        """(distribution, release) pairs the index knows, sorted."""
        return sorted({(d, r) for d, r, _ in self._by_package})


class _Ordered:
    """One package's statements, the fixed ones sorted by fixed version in the
    distribution's order; those no order can place are kept apart and judged one by one."""

    def __init__(self, fixes: Iterable[DistroFix]) -> None:
        self.keys: list[Any] = []
        self.fixed: list[DistroFix] = []
        self.always: list[DistroFix] = []  # vulnerable: no fix yet
        self.loose: list[DistroFix] = []   # a fixed version the order refuses
        self.ecosystem: str | None = None
        pairs = []
        parsed: dict[str, Any] = {}  # one advisory fixes many CVEs in the same version
        for fix in fixes:
            self.ecosystem = ECOSYSTEM.get(fix.distribution)
            if fix.status == "vulnerable" or (fix.status == "fixed" and fix.fixed is None):
                self.always.append(fix)
            elif fix.status == "fixed" and fix.fixed is not None:
                key = parsed.get(fix.fixed)
                if key is None:
                    try:
                        key = parsed[fix.fixed] = distver.parse(self.ecosystem or "", fix.fixed)
                    except distver.VersionError:
                        self.loose.append(fix)
                        continue
                pairs.append((key, fix))
        pairs.sort(key=lambda p: p[0])
        self.keys = [k for k, _ in pairs]
        self.fixed = [f for _, f in pairs]

    def open_for(self, version: str) -> list[DistroFix]:
        try:
            key = distver.parse(self.ecosystem or "", version)
        except distver.VersionError:
            return []  # a version the order refuses: nothing can be said of it
        out = [*self.always, *self.fixed[bisect.bisect_right(self.keys, key):],
               *(f for f in self.loose if f.covers(version) is False)]
        out.sort(key=lambda f: f.cve)
        return out
