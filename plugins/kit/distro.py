"""Which distribution built the service a fingerprint names, and which package version.

A distribution's package keeps the upstream version while it backports fixes, so a
vulnerability matcher needs the build, not only the upstream release: ``recognise`` takes
what a fingerprint saw (product, upstream version, the banner or header text, its OS
hints) and what the other services of the host showed (``host_os``), and returns a
``DistroBuild``: the distribution, its release, the source package, and the full package
version when the banner carries the revision (``SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3``
→ ``1:9.2p1-2+deb12u3``, bookworm). ``certainty`` says how far that goes:

- ``exact-revision``: the banner carries the package revision; ``package_version`` is it;
- ``distro-only``: a ``(Debian)``-style token, an OS hint, or another service of the host
  names the distribution, not the revision: a backport may have fixed what the upstream
  version lacks;
- ``none``: nothing names a distribution (``nginx/1.22.1`` alone, vsftpd, Redis).

Source package names, epochs and the upstream versions a release ships come from
``data/distro_packages.yaml`` (``load_data``). Every text comes from the target: it is cut
to ``MAX_TEXT`` characters, read only by anchored patterns compiled by ``kit.linear_re``
(linear time), and a version is kept only when it is made of the characters of a Debian
version (``[0-9A-Za-z.+~]`` and one ``-``, an epoch's ``:``) and followed by a space, a
comma or the end: ``Debian-2+deb12u3;rm -rf`` gives no revision.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import voluptuous as vol
from pentora_plugins.kit import linear_re
from pentora_plugins.kit.catalog import CatalogError, nonempty, read_yaml, validated

Certainty = Literal["exact-revision", "distro-only", "none"]
EXACT: Certainty = "exact-revision"
DISTRO_ONLY: Certainty = "distro-only"
NONE: Certainty = "none"

MAX_TEXT = 8192  # characters of a banner read: a Server header or a greeting is far shorter
MAX_FIELD = 64  # characters of a product name, version or revision

# Fixed, anchored patterns of our own, run on strings already cut to MAX_FIELD.
_UPSTREAM = re.compile(r"[0-9][0-9A-Za-z._]{0,63}")
_REVISION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+~]{0,63}")
_PACKAGE_VERSION = re.compile(r"(?:[0-9]{1,4}:)?[0-9][0-9A-Za-z.+~]{0,63}-[0-9A-Za-z][0-9A-Za-z.+~]{0,63}")
_DEBIAN_RELEASE = re.compile(r"(?:[+~]deb(\d{1,2})u\d{1,4}|~bpo(\d{1,2})\+\d{1,4}|\+deb(\d{1,2})(?:\+|$))")
_UBUNTU_RELEASE = re.compile(r"(?:ubuntu0?\.?|~)(\d{2}\.\d{2})(?:[.+~]|$)")
_EL_RELEASE = re.compile(r"\.el(\d{1,2})(?:_\d{1,3})?(?:[.+~_]|$)")
_FC_RELEASE = re.compile(r"\.fc(\d{2})(?:[.+~_]|$)")
_REPOSITORIES = (("deb.sury.org", "deb.sury.org"), ("~bpo", "backports"))

# What a banner says, per package entry of the data file: ``dist`` a distribution token,
# ``rev`` the package revision, ``up`` the upstream version. Tried in order; the first
# that matches speaks for the banner.
_SSH = r"\A(?:SSH-\d\.\d{1,3}-)?OpenSSH_(?P<up>\d[0-9A-Za-z.]{0,31}) "
_END = r"(?:[ \t\r\n,]|\z)"
_TOKEN = r"(?P<dist>[A-Za-z][A-Za-z0-9 ./-]{0,39})"
_PATTERNS: dict[str, tuple[str, ...]] = {
    "openssh": (_SSH + r"(?P<dist>Debian|Ubuntu|Raspbian)-(?P<rev>[0-9A-Za-z][0-9A-Za-z.+~]{0,63})" + _END,
                # FreeBSD's base system: the suffix is a date, not a package revision.
                _SSH + r"(?P<dist>FreeBSD|NetBSD)-\d{8}" + _END,
                # a distribution word with a revision refused above: the word alone counts
                _SSH + r"(?P<dist>Debian|Ubuntu|Raspbian|FreeBSD|NetBSD)[- ]"),
    "apache": (r"(?m)^(?:Server:[ \t]*)?Apache/(?P<up>\d[0-9.]{0,15}) \(" + _TOKEN + r"\)",),
    "nginx": (r"(?m)^(?:Server:[ \t]*)?nginx/(?P<up>\d[0-9.]{0,15}) \(" + _TOKEN + r"\)",),
    "php": (r"(?m)^(?:X-Powered-By:[ \t]*)?PHP/(?P<up>\d{1,2}\.\d{1,3}\.\d{1,3})-"
            r"(?P<rev>[0-9A-Za-z][0-9A-Za-z.+~]{0,63})" + _END,),
    "exim": (r"\A220[ -](?:[^ \r\n]{1,255} )?E?SMTP Exim (?P<up>\d{1,2}\.\d{1,3}(?:[._]\d{1,3})?)"
             r"(?: #\d{1,6})? (?P<dist>Debian|Ubuntu)" + _END,),
    "postfix": (r"\A220[ -](?:[^ \r\n]{1,255} )?E?SMTP Postfix \(" + _TOKEN + r"\)",),
    "proftpd": (r"\A220[ -]ProFTPD(?: (?P<up>\d[0-9A-Za-z.]{0,15}))? Server \(" + _TOKEN + r"\)",),
}
# Tokens that say "no distribution" in a place where one could stand.
_UPSTREAM_TOKENS = frozenset({"unix", "win32", "win64", "proftpd default installation"})


class DistroDataError(CatalogError):
    """``distro_packages.yaml`` cannot be used; the message names file, entry and field."""


@dataclass(frozen=True)
class Distribution:
    id: str
    tokens: tuple[str, ...]
    packages: str  # the distribution whose packages it ships (itself, or debian, rhel)
    releases: Mapping[str, str | None]  # release number → codename


@dataclass(frozen=True)
class Build:
    source: str  # may hold {major} and {minor}
    epoch: int


@dataclass(frozen=True)
class Package:
    id: str
    products: tuple[str, ...]
    builds: Mapping[str, Build]  # base distribution id → build
    releases: Mapping[str, Mapping[str, str]]  # base distribution id → upstream → release


@dataclass(frozen=True)
class DistroData:
    distributions: Mapping[str, Distribution]
    packages: tuple[Package, ...]

    @functools.cached_property
    def _tokens(self) -> dict[str, str]:
        return {t.lower(): d.id for d in self.distributions.values() for t in d.tokens}

    @functools.cached_property
    def _products(self) -> dict[str, Package]:
        return {name.lower(): p for p in self.packages for name in p.products}

    def distribution(self, token: str | None) -> Distribution | None:
        """The distribution a banner's word names (``Debian/GNU``, ``Rocky Linux``)."""
        found = self._tokens.get((token or "").strip().lower()[:MAX_FIELD])
        return self.distributions[found] if found else None

    def package(self, product: str | None) -> Package | None:
        return self._products.get((product or "").strip().lower()[:MAX_FIELD])


@dataclass(frozen=True)
class HostOS:
    """The distribution the services of one host agree on, and why."""

    distribution: str
    release: str | None
    evidence: str


@dataclass(frozen=True)
class DistroBuild:
    """The distribution build of one service. ``package_version`` is set only with
    ``certainty`` ``exact-revision``; ``inferred`` when only other services named it."""

    product: str | None
    upstream_version: str | None
    certainty: Certainty = NONE
    distribution: str | None = None
    release: str | None = None
    codename: str | None = None
    source_package: str | None = None
    epoch: int | None = None
    revision: str | None = None
    package_version: str | None = None
    repository: str | None = None  # a repository other than the release's own (backports, a PPA)
    inferred: bool = False
    evidence: str = ""


# -- the data file ----------------------------------------------------------------------------


def _release_key(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise vol.Invalid(f"expected a release number such as '12' or '22.04', got {value!r}")
    return str(value)


_ID = vol.Match(re.compile(r"^[a-z][a-z0-9_-]{0,31}$"), msg="expected lowercase letters, digits, "
                                                           "'_' or '-'")
_DISTRIBUTION = vol.Schema({
    vol.Required("id"): _ID,
    vol.Required("tokens"): vol.All([nonempty], vol.Length(min=1)),
    vol.Optional("packages", default=None): vol.Any(None, _ID),
    vol.Optional("releases", default=dict): {_release_key: vol.Any(None, nonempty)},
})
_BUILD = vol.Schema({vol.Required("source"): vol.Match(re.compile(r"^[a-z0-9][a-z0-9.+{}-]{0,63}$"),
                                                       msg="expected a source package name such as "
                                                           "'openssh' or 'php{major}.{minor}'"),
                     vol.Required("epoch"): vol.All(int, vol.Range(min=0, max=99))})
_PACKAGE = vol.Schema({
    vol.Required("id"): _ID,
    vol.Required("products"): vol.All([nonempty], vol.Length(min=1)),
    vol.Required("builds"): {_ID: _BUILD},
    vol.Optional("releases", default=dict): {_ID: {_release_key: _release_key}},
})


def builtin_path() -> Path:
    return Path(str(resources.files("pentora_plugins").joinpath("data", "distro_packages.yaml")))


def load_data(path: Path | None = None) -> DistroData:
    """The distributions and packages of ``path`` (default: the built-in file), checked:
    ``DistroDataError`` names the file, the entry and the field at fault."""
    path = path or builtin_path()
    st = path.stat() if path.exists() else None
    return _load(str(path), st.st_mtime_ns if st else 0)


@functools.lru_cache(maxsize=4)
def _load(source: str, _mtime: int) -> DistroData:
    try:
        return _parse(Path(source))
    except DistroDataError:
        raise
    except CatalogError as e:
        raise DistroDataError(str(e)) from None


def _parse(path: Path) -> DistroData:
    name = str(path)
    doc = read_yaml(path, name)
    if not isinstance(doc, dict) or set(doc) != {"distributions", "packages"}:
        raise DistroDataError(f"{name}: expected a mapping with 'distributions:' and 'packages:' "
                              f"(and nothing else), got "
                              f"{sorted(map(str, doc)) if isinstance(doc, dict) else type(doc).__name__}")
    dists: dict[str, Distribution] = {}
    for key in ("distributions", "packages"):
        if not isinstance(doc[key], list):
            raise DistroDataError(f"{name}: '{key}:' must be a list, got {type(doc[key]).__name__}")
    for _where, f in validated(doc["distributions"], "distribution", _DISTRIBUTION, name):
        dists[f["id"]] = Distribution(f["id"], tuple(f["tokens"]), f["packages"] or f["id"],
                                      dict(f["releases"]))
    for d in dists.values():
        if d.packages not in dists:
            raise DistroDataError(f"{name}: distribution '{d.id}': field 'packages': '{d.packages}' "
                                  f"is no distribution of this file (known: {', '.join(dists)})")
    packages = [_package(where, f, dists) for where, f in
                validated(doc["packages"], "package", _PACKAGE, name)]
    data = DistroData(dists, tuple(packages))
    _no_twice(name, "token", [(t.lower(), d.id) for d in dists.values() for t in d.tokens])
    _no_twice(name, "product", [(n.lower(), p.id) for p in packages for n in p.products])
    return data


def _package(where: str, f: dict[str, Any], dists: Mapping[str, Distribution]) -> Package:
    bases = sorted({d.packages for d in dists.values()})
    for field, table in (("builds", f["builds"]), ("releases", f["releases"])):
        for dist in table:
            if dist not in bases:
                raise DistroDataError(f"{where}: field '{field}': '{dist}' is not a distribution "
                                      f"whose packages others use (one of: {', '.join(bases)})")
    for dist, table in f["releases"].items():
        for upstream, release in table.items():
            if release not in dists[dist].releases:
                raise DistroDataError(f"{where}: field 'releases.{dist}.{upstream}': release "
                                      f"'{release}' is not listed under distribution '{dist}' "
                                      f"(add it there, or correct the number)")
    builds = {k: Build(v["source"], v["epoch"]) for k, v in f["builds"].items()}
    for dist, build in builds.items():
        try:
            build.source.format(major="1", minor="2")
        except (KeyError, IndexError, ValueError):
            raise DistroDataError(f"{where}: field 'builds.{dist}.source': only {{major}} and "
                                  f"{{minor}} may stand in '{build.source}'") from None
    return Package(f["id"], tuple(f["products"]), builds,
                   {k: {str(u): str(r) for u, r in v.items()} for k, v in f["releases"].items()})


def _no_twice(name: str, noun: str, pairs: list[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for key, owner in pairs:
        if key in seen and seen[key] != owner:
            raise DistroDataError(f"{name}: {noun} '{key}' is given by both '{seen[key]}' and "
                                  f"'{owner}': keep it in one entry")
        seen[key] = owner


# -- recognising ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _compiled() -> dict[str, tuple[linear_re.Pattern[str], ...]]:
    return {key: tuple(linear_re.compile(p) for p in patterns) for key, patterns in _PATTERNS.items()}


def clean_text(text: str | None) -> str:
    """A target's text cut to ``MAX_TEXT`` characters; NUL bytes dropped."""
    return (text or "")[:MAX_TEXT].replace("\x00", "")


def clean_version(version: str | None) -> str | None:
    """``version`` when it is an upstream version (digits first, then letters, digits, '.'
    and '_', at most MAX_FIELD characters), else None: never part of a hostile string."""
    v = (version or "").strip()
    return v if len(v) <= MAX_FIELD and _UPSTREAM.fullmatch(v) else None


def recognise(product: str | None, version: str | None = None, text: str | None = None,
              os: Mapping[str, Any] | None = None, *, host: HostOS | None = None,
              data: DistroData | None = None) -> DistroBuild:
    """The distribution build of one service: its product and upstream version as the
    fingerprint named them, the banner or header ``text`` it came from, its ``os`` hints,
    and ``host``, what the other services of its host showed (``host_os``)."""
    data = data or load_data()
    package = data.package(product)
    product = (product or "")[:MAX_FIELD] or None
    base = DistroBuild(product=product, upstream_version=clean_version(version))
    if package is None:
        return replace(base, evidence=f"no distribution packages known for product {product!r}")
    seen = _from_banner(package, clean_text(text), data, base)
    if seen is None:
        seen = _from_os_hint(os, data, base)
    if seen is None and host is not None and host.distribution in data.distributions:
        seen = replace(base, certainty=DISTRO_ONLY, distribution=host.distribution,
                       release=host.release, inferred=True, evidence=f"host: {host.evidence}")
    if seen is None:
        return replace(base, evidence="the banner names no distribution")
    if seen.distribution is None:
        # The banner says it is no distribution's build ("(Unix)": built from source): what
        # the other services show does not make it one.
        return seen
    return _complete(seen, package, data, host)


def _from_banner(package: Package, text: str, data: DistroData, base: DistroBuild) -> DistroBuild | None:
    for pattern in _compiled().get(package.id, ()):
        m = pattern.search(text)
        if m is None:
            continue
        groups = m.groupdict()
        up = clean_version(groups.get("up")) or base.upstream_version
        rev = groups.get("rev")
        rev = rev if rev and _REVISION.fullmatch(rev) else None
        token = groups.get("dist")
        dist = data.distribution(token)
        if dist is None and rev:
            dist = data.distributions.get(_distribution_of_revision(rev) or "")
        shown = m.group(0).strip(" \t\r\n,")
        if dist is None:
            what = f"({token})" if token else "its revision"
            why = "names no distribution" if (token or "").lower() in _UPSTREAM_TOKENS \
                else "is no distribution known"
            return replace(base, upstream_version=up, evidence=f"{what} in {shown!r} {why}"[:200])
        return replace(base, upstream_version=up, distribution=dist.id, revision=rev,
                       certainty=EXACT if rev else DISTRO_ONLY, evidence=f"banner: {shown!r}"[:200])
    return None


def _from_os_hint(os: Mapping[str, Any] | None, data: DistroData, base: DistroBuild) -> DistroBuild | None:
    if not isinstance(os, Mapping):
        return None
    dist = data.distribution(os.get("distribution") if isinstance(os.get("distribution"), str) else None)
    if dist is None:
        return None
    release = str(os.get("release") or "")[:MAX_FIELD]
    return replace(base, certainty=DISTRO_ONLY, distribution=dist.id,
                   release=release if release in dist.releases else None,
                   evidence=f"os hint: {dist.id}{' ' + release if release in dist.releases else ''}")


def _distribution_of_revision(rev: str) -> str | None:
    if _DEBIAN_RELEASE.search(rev):
        return "debian"
    if "ubuntu" in rev:
        return "ubuntu"
    if _EL_RELEASE.search(rev):
        return "rhel"
    if _FC_RELEASE.search(rev):
        return "fedora"
    return None


def _release_of_revision(dist: Distribution, rev: str) -> str | None:
    patterns = {"debian": _DEBIAN_RELEASE, "ubuntu": _UBUNTU_RELEASE, "rhel": _EL_RELEASE,
                "fedora": _FC_RELEASE}
    pattern = patterns.get(dist.packages)
    m = pattern.search(rev) if pattern else None
    if m is None:
        return None
    found = next(g for g in m.groups() if g)
    return found if found in dist.releases or dist.id == "fedora" else None


def _complete(seen: DistroBuild, package: Package, data: DistroData, host: HostOS | None) -> DistroBuild:
    """``seen`` with its release, codename, source package, epoch and package version."""
    dist = data.distributions[seen.distribution or ""]
    release = seen.release
    if release is None and seen.revision:
        release = _release_of_revision(dist, seen.revision)
    if release is None and seen.upstream_version:
        release = package.releases.get(dist.packages, {}).get(seen.upstream_version)
    if release is None and host is not None and host.distribution == dist.id:
        release = host.release
    build = package.builds.get(dist.packages)
    source = _source_name(build.source, seen.upstream_version) if build else None
    version = None
    if seen.revision and build and seen.upstream_version:
        prefix = f"{build.epoch}:" if build.epoch else ""
        candidate = f"{prefix}{seen.upstream_version}-{seen.revision}"
        version = candidate if _PACKAGE_VERSION.fullmatch(candidate) else None
    repository = next((name for marker, name in _REPOSITORIES
                       if seen.revision and marker in seen.revision), None)
    return replace(seen, release=release, codename=dist.releases.get(release) if release else None,
                   source_package=source, epoch=build.epoch if build else None,
                   package_version=version, repository=repository,
                   certainty=seen.certainty if version or seen.certainty != EXACT else DISTRO_ONLY)


def _source_name(template: str, upstream: str | None) -> str | None:
    if "{" not in template:
        return template
    parts = re.findall(r"\d+", upstream or "")[:2]
    if len(parts) < template.count("{"):
        return None  # php{major}.{minor} without a version: the name is not known
    return template.format(major=parts[0], minor=parts[1] if len(parts) > 1 else "")


# -- a host -----------------------------------------------------------------------------------


def host_os(builds: Iterable[DistroBuild]) -> HostOS | None:
    """The distribution the host's services show on their own (not ``inferred``), when they
    agree; None when none shows one or two disagree (two systems behind one address: a
    NAT, a load balancer, containers). The release is kept when those that name one agree."""
    own = [b for b in builds if b.distribution and not b.inferred]
    if not own or len({b.distribution for b in own}) != 1:
        return None
    releases = {b.release for b in own if b.release}
    release = releases.pop() if len(releases) == 1 else None
    first = next((b for b in own if b.release == release), own[0])
    label = f"{first.distribution}{' ' + release if release else ''}"
    return HostOS(first.distribution or "", release, f"{label}, from {first.product or 'a service'}")


def recognise_host(services: Iterable[tuple[str | None, str | None, str | None, Mapping[str, Any] | None]],
                   data: DistroData | None = None) -> list[DistroBuild]:
    """Each service's build (product, version, text, os hints), in order, the others of
    the same host as evidence for those whose banner names no distribution."""
    items = list(services)
    alone = [recognise(p, v, t, o, data=data) for p, v, t, o in items]
    host = host_os(alone)
    if host is None:
        return alone
    return [b if b.distribution else recognise(p, v, t, o, host=host, data=data)
            for b, (p, v, t, o) in zip(alone, items, strict=True)]
