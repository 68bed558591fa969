"""What a host says about itself, read as hostile text: ``/etc/os-release`` and the package
lists of dpkg, rpm and apk, as ``package_inventory`` runs them.

Every value comes from the logged-in host, which may be compromised or not a real
system at all (a ForceCommand script, a honeypot): lines are cut to ``MAX_LINE``, a
name must look like one of its packaging system's names, a version must be one
``kit.distver`` accepts for the ecosystem, and a line that fails is refused (counted,
its first few reasons kept, cleaned of terminal escapes) rather than guessed at.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pentora_plugins.kit import distro, distver

from pentora import clean_text

MAX_LINE = 1024  # characters: a package line is under 200, an os-release line under 100
MAX_REASONS = 5  # refused lines described in the message; the rest are counted

# The os-release IDs (os-release(5)) whose kit.distro id differs from them.
_OS_RELEASE_IDS = {"almalinux": "alma", "ol": "oracle", "amzn": "amazon", "centos": "centos",
                   "rhel": "rhel", "rocky": "rocky"}
# The package manager of each family of distributions (kit.distro's ``packages``).
_MANAGERS = {"debian": "dpkg", "ubuntu": "dpkg", "rhel": "rpm", "fedora": "rpm", "amazon": "rpm",
             "alpine": "apk"}
ECOSYSTEM = {"dpkg": "deb", "rpm": "rpm", "apk": "apk"}

_OS_KEY = re.compile(r"[A-Z][A-Z0-9_]{0,63}", re.ASCII)
_OS_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}", re.ASCII)
_OS_VERSION_ID = re.compile(r"[0-9][0-9A-Za-z._~-]{0,31}", re.ASCII)
# Debian Policy 5.6.1: lower case letters, digits, + - . and at least two characters.
_DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{1,127}", re.ASCII)
_DEB_ARCH = re.compile(r"[a-z0-9][a-z0-9-]{0,31}", re.ASCII)
# dpkg's db:Status-Abbrev: wanted (u i h r p), current state, error flag (space or R).
_DEB_STATUS = re.compile(r"[uihrp][ncHUFWti][ R]", re.ASCII)
_RPM_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]{0,127}", re.ASCII)
_RPM_ARCH = re.compile(r"[A-Za-z0-9_]{1,32}", re.ASCII)
_RPM_EPOCH = re.compile(r"[0-9]{1,10}", re.ASCII)
_APK_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]{0,127}", re.ASCII)
_APK_LINE = re.compile(r"(\S{1,300}) ([A-Za-z0-9_]{1,32}) \{([^{}\s]{1,128})\} \(.{0,500}\) \[installed\]",
                       re.ASCII)


@dataclass(frozen=True)
class OsRelease:
    """The fields of ``/etc/os-release`` the inventory needs, each checked."""

    id: str | None = None
    id_like: tuple[str, ...] = ()
    version_id: str | None = None
    codename: str | None = None


@dataclass
class Parsed:
    """The packages of one list, and what was refused in it."""

    packages: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    reasons: list[str] = field(default_factory=list)

    _seen: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def refuse(self, number: int, line: str, why: str) -> None:
        self.refused += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(f"line {number} '{clean_text(line)}': {why}")

    def add(self, number: int, line: str, name: str, version: str, source: str,
            source_version: str, arch: str) -> None:
        """Keep a checked package; one already listed for its architecture is refused."""
        if (name, arch) in self._seen:
            self.refuse(number, line, "the same package and architecture listed twice")
            return
        self._seen.add((name, arch))
        self.packages.append({"name": name, "version": version, "source": source,
                              "source_version": source_version, "arch": arch})


def parse_os_release(text: str) -> OsRelease:
    """os-release(5): ``KEY=VALUE`` lines, the value shell-quoted or bare. A line that is
    not one, or a value that does not look like what its key holds, is left out."""
    values: dict[str, str] = {}
    for line in text.splitlines()[:200]:
        key, sep, raw = line[:MAX_LINE].partition("=")
        if not sep or not _OS_KEY.fullmatch(key):
            continue
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:  # an unbalanced quote
            continue
        if len(words) == 1:
            values[key] = words[0]
    like = tuple(w for w in values.get("ID_LIKE", "").split()[:8] if _OS_ID.fullmatch(w))
    return OsRelease(id=_checked(values.get("ID"), _OS_ID), id_like=like,
                     version_id=_checked(values.get("VERSION_ID"), _OS_VERSION_ID),
                     codename=_checked(values.get("VERSION_CODENAME"), _OS_ID))


def _checked(value: str | None, pattern: re.Pattern[str]) -> str | None:
    return value if value is not None and pattern.fullmatch(value) else None


@dataclass(frozen=True)
class System:
    """The distribution a host runs, as kit.distro names it, and its package manager."""

    distribution: str | None
    release: str | None
    codename: str | None
    manager: str | None


def system_of(osr: OsRelease) -> System:
    """``debian``/``12``/``bookworm``/``dpkg`` from the os-release of a Debian 12 host.

    The distribution is the ID when kit.distro knows it, else the first ID_LIKE it knows
    (a derivative: its release numbers are its own, so the release is left out). RHEL and
    its rebuilds name releases by their major number (``9.4`` → ``9``), Alpine by two
    (``3.19.1`` → ``3.19``).
    """
    data = distro.load_data()
    own = _OS_RELEASE_IDS.get(osr.id or "", osr.id or "")
    if own in data.distributions:
        dist, release = data.distributions[own], osr.version_id
    else:
        like = [_OS_RELEASE_IDS.get(i, i) for i in osr.id_like]
        found = next((i for i in like if i in data.distributions), None)
        if found is None:
            return System(None, None, osr.codename, None)
        dist, release = data.distributions[found], None
    if release is not None and release not in dist.releases:
        parts = release.split(".")
        release = ".".join(parts[:2]) if dist.id == "alpine" else parts[0]
    codename = osr.codename or (dist.releases.get(release) if release else None)
    manager = _MANAGERS.get(dist.id) or _MANAGERS.get(dist.packages)
    return System(dist.id, release, codename, manager)


def parse_dpkg(lines: Iterable[str]) -> Parsed:
    """``PACKAGE\\tVERSION\\tSOURCE\\tSOURCE-VERSION\\tARCH\\tSTATUS`` lines (the format of
    ``DPKG_QUERY``); packages dpkg knows of but has not installed (removed with their
    configuration files kept, ``rc``) are not installed packages and are left out."""
    out = Parsed()
    for number, line in enumerate(lines, 1):
        fields = line[:MAX_LINE].split("\t")
        if len(fields) != 6:
            out.refuse(number, line, f"{len(fields)} tab-separated fields, not 6")
            continue
        name, version, source, source_version, arch, status = fields
        why = (_name_problem(name, _DEB_NAME, "a Debian package name")
               or _name_problem(source, _DEB_NAME, "a Debian source package name")
               or _version_problem("deb", version) or _version_problem("deb", source_version)
               or _name_problem(arch, _DEB_ARCH, "a Debian architecture")
               or _name_problem(status, _DEB_STATUS, "a dpkg status (ii, rc, …)"))
        if why:
            out.refuse(number, line, why)
            continue
        if status[1] in "nc":
            continue
        out.add(number, line, name, version, source, source_version, arch)
    return out


def parse_rpm(lines: Iterable[str]) -> Parsed:
    """``NAME\\tEPOCH\\tVERSION-RELEASE\\tSOURCERPM\\tARCH`` lines (``RPM_QUERY``). The
    source package and its version come from the source rpm's file name
    (``openssh-8.7p1-38.el9.src.rpm``); gpg-pubkey entries have none and are not
    software."""
    out = Parsed()
    for number, line in enumerate(lines, 1):
        fields = line[:MAX_LINE].split("\t")
        if len(fields) != 5:
            out.refuse(number, line, f"{len(fields)} tab-separated fields, not 5")
            continue
        name, epoch, vr, srpm, arch = fields
        if name == "gpg-pubkey":
            continue
        version = vr if epoch in ("0", "(none)") else f"{epoch}:{vr}"
        source, source_version = _source_rpm(srpm, epoch)
        why = (_name_problem(name, _RPM_NAME, "an rpm package name")
               or ("" if epoch == "(none)" else _name_problem(epoch, _RPM_EPOCH, "an rpm epoch"))
               or _version_problem("rpm", version)
               or ("" if source else f"source rpm '{clean_text(srpm)}' is not NAME-VERSION-RELEASE.src.rpm")
               or _name_problem(arch, _RPM_ARCH, "an rpm architecture"))
        if why or source is None or source_version is None:
            out.refuse(number, line, why or "no source package")
            continue
        out.add(number, line, name, version, source, source_version, arch)
    return out


def _source_rpm(srpm: str, epoch: str) -> tuple[str | None, str | None]:
    stem = srpm.removesuffix(".src.rpm").removesuffix(".nosrc.rpm")
    parts = stem.rsplit("-", 2)
    if stem == srpm or len(parts) != 3 or not _RPM_NAME.fullmatch(parts[0]):
        return None, None
    vr = f"{parts[1]}-{parts[2]}"
    version = vr if epoch in ("0", "(none)") else f"{epoch}:{vr}"
    return (parts[0], version) if distver.is_valid("rpm", version) else (None, None)


def parse_apk(lines: Iterable[str]) -> Parsed:
    """``apk list --installed`` lines: ``NAME-VERSION-rN ARCH {ORIGIN} (LICENSE)
    [installed]``; the origin is the source package (aports' directory)."""
    out = Parsed()
    for number, line in enumerate(lines, 1):
        m = _APK_LINE.fullmatch(line[:MAX_LINE])
        if m is None:
            out.refuse(number, line, "not NAME-VERSION ARCH {ORIGIN} (LICENSE) [installed]")
            continue
        pkgver, arch, origin = m.groups()
        parts = pkgver.rsplit("-", 2)
        if len(parts) != 3:
            out.refuse(number, line, "no NAME-VERSION-rN")
            continue
        name, version = parts[0], f"{parts[1]}-{parts[2]}"
        why = (_name_problem(name, _APK_NAME, "an apk package name")
               or _name_problem(origin, _APK_NAME, "an apk origin")
               or _version_problem("apk", version))
        if why:
            out.refuse(number, line, why)
            continue
        out.add(number, line, name, version, origin, version, arch)
    return out


PARSERS = {"dpkg": parse_dpkg, "rpm": parse_rpm, "apk": parse_apk}


def _name_problem(value: str, pattern: re.Pattern[str], what: str) -> str:
    return "" if pattern.fullmatch(value) else f"'{clean_text(value)}' is not {what}"


def _version_problem(ecosystem: str, version: str) -> str:
    if distver.is_valid(ecosystem, version):
        return ""
    return f"'{clean_text(version)}' is not a {ecosystem} version"
