"""Deciding each finding: upstream ranges, the distribution's own statement, and how sure.

A subject is a product version found on a port (a service fingerprint or a web
technology) with the texts it was read from (its banners, its Server header). The
catalog's upstream entries say which upstream versions a CVE affects; but a distribution
keeps the upstream version while it backports the fix, so what a finding is worth depends
on the build (``kit.distro.recognise``) and on what the distribution says (``FixIndex``):

- **exact revision** (``OpenSSH_9.2p1 Debian-2+deb12u3``): the package version is compared,
  in the distribution's own order, with the version the distribution fixed the CVE in.
  Fixed or not affected: no finding. Older: ``banner-distro``. The distribution says
  nothing of it: ``banner-backport-prone`` (it may well be fixed).
- **distribution only** (``Apache/2.4.57 (Debian)``, or another service of the host, or
  its installed packages, names the distribution): the upstream version alone cannot say;
  ``banner-backport-prone``, unless the distribution's first fixed package is of a later
  upstream release than the one shown (then no package of that upstream version has the
  fix: ``banner-distro``), or the release is not affected (no finding).
- **no distribution** (``SSH-2.0-OpenSSH_9.3``, ``Apache/2.4.49 (Unix)``): ``banner``.
- **installed packages** (a credentialed check's ``packages`` of the host): the exact
  package version, compared as above: ``package``. Every source package of the inventory
  is checked against the distribution's statements, client programs included.

Entries whose ``role`` is ``client`` (ssh-agent, the ssh client) are never reported from
a server's banner: the daemon answering is not the program that is flawed.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import gc
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pentora_plugins.cve.catalog import Catalog, Entry, Hit, parse_cpe, product_key
from pentora_plugins.cve.fixes import ECOSYSTEM, DistroFix
from pentora_plugins.cve.version import is_version, upstream, version_key
from pentora_plugins.kit import distro, quality
from pentora_plugins.kit.catalog import CatalogError as RulesError
from pentora_plugins.kit.catalog import load_catalog as load_rules
from pentora_plugins.kit.findings import severity_of
from pentora_plugins.kit.records import Vulnerability
from pentora_plugins.kit.records import field_of as _get

BATCH = 256  # subjects whose findings are made before they are handed on
MAX_TEXTS = 4  # banners of one port read for its distribution build
_QUOTED = re.compile(r': "((?:[^"\\]|\\.){0,400})"')


@dataclass(frozen=True)
class Subject:
    """A product version found on a port: from a fingerprint or a web technology.

    ``texts`` are what the target said there (banners, a Server header), read for the
    distribution build; ``os`` the fingerprint rule's OS hints."""

    host: str
    port: int | None
    product: str | None
    version: str | None
    cpe: str | None
    confidence: float
    evidence: str
    texts: tuple[str, ...] = ()
    os: tuple[tuple[str, str], ...] = ()


def quoted(evidence: str) -> list[str]:
    """The banner texts a fingerprint's evidence quotes (``rule [probe]: "text"``), unescaped."""
    out = []
    for m in _QUOTED.finditer(evidence or ""):
        try:
            out.append(codecs.decode(m.group(1).encode("ascii", "replace"), "unicode_escape"))
        except (UnicodeDecodeError, ValueError):
            continue  # an escape cut in the middle: the text is not needed that much
    return out


def as_subject(record: Any, texts: Iterable[str] = ()) -> Subject | None:
    """A fingerprint or web technology (record or dict) as a Subject; None without a host."""
    host = _get(record, "host")
    if not host:
        return None
    os_hint = _get(record, "os") or {}
    os_items = tuple((str(k), str(v)) for k, v in os_hint.items()
                     if isinstance(v, str | int))[:8] if isinstance(os_hint, dict) else ()
    confidence = _get(record, "confidence")
    evidence = " ".join(str(x) for x in (_get(record, "evidence"), _get(record, "info")) if x)
    return Subject(host=str(host), port=_get(record, "port"),
                   product=_get(record, "product") or _get(record, "name"),
                   version=_get(record, "version"), cpe=_get(record, "cpe"),
                   confidence=float(confidence) if confidence else 1.0, evidence=evidence,
                   texts=tuple([*texts, *quoted(evidence)][:MAX_TEXTS]), os=os_items)


@functools.lru_cache(maxsize=1)
def product_names() -> dict[str, tuple[str, str]]:
    """Product names of the built-in fingerprint rules → CPE (vendor, product)."""
    names: dict[str, tuple[str, str]] = {}
    try:
        rules = load_rules().rules
    except RulesError:
        return names
    for rule in rules:
        parsed = parse_cpe(rule.cpe) if rule.product and rule.cpe else None
        if parsed and rule.product:
            names.setdefault(rule.product.lower(), (parsed[0], parsed[1]))
    return names


def identify(subject: Subject) -> tuple[str, str, str] | None:
    """(vendor, product, version) to look up, or None when the version is unknown."""
    parsed = parse_cpe(subject.cpe) if subject.cpe else None
    version = subject.version or (parsed[2] if parsed else None)
    if not is_version(version):
        return None
    if parsed:
        return parsed[0], parsed[1], str(version)
    known = product_names().get((subject.product or "").lower())
    if known:
        return known[0], known[1], str(version)
    if subject.product:
        return "*", subject.product.lower().replace(" ", "_"), str(version)
    return None


# -- the build of each subject, and of each host ----------------------------------------------


@dataclass
class Inventory:
    """A host's installed packages (``InstalledPackages``) by source package."""

    distribution: str
    release: str
    sources: dict[str, str] = field(default_factory=dict)  # source package → its version
    evidence: str = ""


def inventories(records: Iterable[Any]) -> dict[str, Inventory]:
    """Per host, its credentialed package inventory (the packages of base distributions only)."""
    data = distro.load_data()
    out: dict[str, Inventory] = {}
    for r in records:
        dist = data.distributions.get(str(_get(r, "distribution") or ""))
        release = _get(r, "release")
        if dist is None or not release or not _get(r, "host"):
            continue
        inv = Inventory(dist.packages, str(release),
                        evidence=f"installed packages of {dist.id} {release}, read over SSH")
        for p in _get(r, "packages") or ():
            if not isinstance(p, dict):
                continue
            source = p.get("source") or p.get("name")
            version = p.get("source_version") or p.get("version")
            if isinstance(source, str) and isinstance(version, str):
                inv.sources.setdefault(source, version)
        out[str(_get(r, "host"))] = inv
    return out


class _Recogniser:
    """``kit.distro.recognise`` over a subject's texts, each answer kept for the evaluation:
    the first text that shows the package revision wins, else the first that names a
    distribution."""

    def __init__(self, data: distro.DistroData) -> None:
        self.data = data
        self.memo: dict[tuple[Any, ...], distro.DistroBuild] = {}

    def __call__(self, s: Subject, host: distro.HostOS | None) -> distro.DistroBuild:
        if self.data.package(s.product) is None:  # no distribution ships it under that name
            return distro.DistroBuild(product=s.product, upstream_version=s.version,
                                      evidence="no distribution packages known for this product")
        key = (s.product, s.version, s.texts, s.os, host)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = self._recognise(s, host)
        return found

    def _recognise(self, s: Subject, host: distro.HostOS | None) -> distro.DistroBuild:
        best: distro.DistroBuild | None = None
        for text in s.texts or ("",):
            build = distro.recognise(s.product, s.version, text, dict(s.os) or None, host=host,
                                     data=self.data)
            if build.certainty == distro.EXACT:
                return build
            if best is None or (best.certainty == distro.NONE and build.certainty != distro.NONE):
                best = build
        assert best is not None
        return best


def builds(subjects: list[Subject], packages: Mapping[str, Inventory],
           data: distro.DistroData | None = None) -> list[distro.DistroBuild]:
    """Each subject's build; a subject whose own texts name no distribution takes its host's,
    as the host's other services or its installed packages show it."""
    recognise = _Recogniser(data or distro.load_data())
    alone = [recognise(s, None) for s in subjects]
    by_host: dict[str, list[distro.DistroBuild]] = {}
    for s, b in zip(subjects, alone, strict=True):
        by_host.setdefault(s.host, []).append(b)
    hosts: dict[str, distro.HostOS | None] = {h: distro.host_os(bs) for h, bs in by_host.items()}
    for h, inv in packages.items():
        hosts[h] = distro.HostOS(inv.distribution, inv.release, inv.evidence)
    # Again with the host's evidence: for a build that names no distribution, and for one
    # that names it without its release ("(Debian)"). recognise() keeps a build whose
    # banner says it is no distribution's ("(Unix)") as it is.
    out = []
    for s, b in zip(subjects, alone, strict=True):
        host = hosts.get(s.host)
        if host is not None and (not b.distribution or (b.release is None
                                                        and b.distribution == host.distribution)):
            b = recognise(s, host)
        out.append(b)
    return out


# -- the verdict on one CVE ----------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    method: str
    why: str


def _named(fix: DistroFix) -> str:
    return f"{fix.distribution} {fix.release} {fix.package}"


def judge(fix: DistroFix | None, build: distro.DistroBuild, package_version: str | None,
          exact: str, upstream_hit: bool) -> Verdict | None:
    """How a CVE stands on this build (None: not vulnerable, or nothing says it is).

    ``package_version`` is the exact version (from the banner's revision, or the host's
    installed packages, ``exact`` naming which); ``upstream_hit`` whether an upstream range
    covers the upstream version shown."""
    if package_version is not None:
        if fix is None:
            if not upstream_hit:
                return None
            return Verdict(quality.BANNER_BACKPORT_PRONE,
                           f"the catalog has no statement of {build.distribution} {build.release or ''} "
                           f"about this CVE in {build.source_package} {package_version}: the "
                           f"distribution may have fixed it".replace("  ", " "))
        covers = fix.covers(package_version)
        if covers:
            return None
        if covers is None:  # a version the distribution's order refuses: a forged revision
            return Verdict(quality.BANNER_BACKPORT_PRONE,
                           f"{package_version} does not compare in {fix.distribution}'s version "
                           f"order with the fix {fix.fixed}") if upstream_hit else None
        if fix.status == "vulnerable":
            return Verdict(exact, f"{_named(fix)} {package_version}: no fix released yet "
                                  f"({fix.advisory})")
        return Verdict(exact, f"{_named(fix)} {package_version} is older than the fix "
                              f"{fix.fixed} ({fix.advisory})")
    if build.distribution:
        if fix is not None and fix.status == "not-affected":
            return None
        shown = build.upstream_version
        if fix is not None and fix.status == "vulnerable":
            return Verdict(quality.BANNER_DISTRO, f"{_named(fix)}: no fix released yet ({fix.advisory})")
        if (fix is not None and fix.fixed and shown
                and version_key(shown) < version_key(upstream(fix.fixed))):
            return Verdict(quality.BANNER_DISTRO,
                           f"{_named(fix)} was first fixed in {fix.fixed} ({fix.advisory}), a "
                           f"later upstream release than {shown}: no {shown} package has the fix")
        if not upstream_hit:
            return None
        fixed = f"; fixed in {fix.fixed} ({fix.advisory})" if fix is not None and fix.fixed else ""
        return Verdict(quality.BANNER_BACKPORT_PRONE,
                       f"a {build.distribution} build without its package revision "
                       f"({build.evidence}): {build.distribution} may have backported the fix"
                       f"{fixed}; a credentialed scan (--ssh-user) can tell")
    if not upstream_hit:
        return None
    return Verdict(quality.BANNER, f"no distribution build seen ({build.evidence})")


# -- the findings ------------------------------------------------------------------------------


def advisory_url(advisory: str) -> str | None:
    if advisory.startswith("https://"):
        return advisory
    if advisory.startswith(("DSA-", "DLA-")):
        return f"https://security-tracker.debian.org/tracker/{advisory}"
    if advisory.startswith("USN-"):
        return f"https://ubuntu.com/security/notices/{advisory}"
    if advisory.startswith("RHSA-"):
        return f"https://access.redhat.com/errata/{advisory}"
    return None


# What a finding holds besides its host and port, in Vulnerability's field order after them:
# id, title, severity, cvss, evidence, references, source, quality, method, known_exploited.
Fields = tuple[str, str, str, "float | None", str, tuple[str, ...], str, int, str, bool]


def _fields(catalog: Catalog, ident: str, entry: Entry | None, fix: DistroFix | None,
            verdict: Verdict, evidence: str) -> Fields:
    url = advisory_url(fix.advisory) if fix else None
    refs = tuple(entry.references) if entry else ()
    if url and url not in refs:
        refs = (*refs, url)
    if entry is not None:
        title = entry.title
        severity = severity_of(entry.cvss) if entry.cvss is not None else entry.severity or "info"
    else:
        title = (fix.title if fix else "") or ident
        severity = (fix.severity if fix else None) or "info"
    return (ident, title, severity, entry.cvss if entry else None, evidence, refs,
            entry.source if entry else (fix.source if fix else ""), quality.QUALITY[verdict.method],
            verdict.method, bool(entry and entry.kev) or ident in catalog.kev)


def _record(host: str, port: int | None, f: Fields) -> Vulnerability:
    # positional: a finding is made for every host of a fleet, and this is the cheap call
    return Vulnerability(host, port, f[0], f[1], f[2], f[3], f[4], list(f[5]), f[6], f[7], f[8], f[9])


Judged = tuple["Entry | None", Fields]  # the entry (for min_cvss), the finding's fields


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused (and resumed after, if it ran before).

    On resuming, what was made meanwhile joins the oldest generation (``gc.freeze`` then
    ``gc.unfreeze``: two list splices) instead of setting off a collection of the youngest
    that walks every finding at once; the next full collection sees it as usual. Skipped
    when the program froze objects itself (``unfreeze`` would release them)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if was:
            gc.enable()


class _Evaluation:
    """One evaluation's memos: the hits of a product version, and the judged findings of a
    build (the same build on many hosts, a fleet of one distribution's sshd, judged once)."""

    def __init__(self, catalog: Catalog, packages: Mapping[str, Inventory], data: distro.DistroData) -> None:
        self.catalog, self.packages, self.data = catalog, packages, data
        self.hits: dict[tuple[str, str, str], list[Hit]] = {}
        self.judged_memo: dict[tuple[Any, ...], tuple[list[Judged], set[str]]] = {}
        self.reported: set[tuple[str, str, str]] = set()  # (host, source package, CVE) of an inventory

    def judged(self, subject: Subject, build: distro.DistroBuild) -> list[Judged]:
        what = identify(subject)
        if what is None:
            return []
        hits = self.hits.get(what)
        if hits is None:
            hits = self.hits[what] = [h for h in self.catalog.find(*what) if h.entry.role != "client"]
        dist = self.data.distributions.get(build.distribution or "")
        base = dist.packages if dist else None
        inventory = self.packages.get(subject.host)
        version, exact = build.package_version, quality.BANNER_DISTRO
        if inventory and base == inventory.distribution and build.source_package in inventory.sources:
            version, exact = inventory.sources[build.source_package], quality.PACKAGE
        release = build.release or (inventory.release if inventory and exact == quality.PACKAGE else None)
        where = (base, release, build.source_package) if base and release and build.source_package \
            else None
        if not hits and (where is None or not self.catalog.fixes.package(*where)):
            return []
        key = (what, subject.product, build, version, exact)
        done = self.judged_memo.get(key)
        if done is None:
            done = self.judged_memo[key] = _judge_subject(
                self.catalog, subject.product or what[1], what, hits, build, where, version, exact)
        judged, considered = done
        if exact == quality.PACKAGE:
            self.reported.update((subject.host, build.source_package or "", i) for i in considered)
        return judged


def evaluate(catalog: Catalog, subjects: Iterable[Subject], *, min_confidence: float = 0.0,
             min_cvss: float = 0.0, packages: Mapping[str, Inventory] | None = None
             ) -> Iterator[Vulnerability]:
    """The findings of every subject, in subject order (entries by id within one), then
    those of the hosts' installed packages that no subject showed."""
    packages = packages or {}
    subjects = [s for s in subjects if s.confidence >= min_confidence]
    data = distro.load_data()
    run = _Evaluation(catalog, packages, data)

    def keep(entry: Entry | None) -> bool:
        cvss = entry.cvss if entry else None
        return min_cvss <= 0 or (cvss is not None and cvss >= min_cvss)

    # The whole evaluation runs with the cyclic garbage collector paused, across the yields
    # too: the findings are acyclic (reference counting frees them), and the collections
    # their numbers set off would walk the catalog's millions of objects for nothing, at a
    # cost near the evaluation's own. Closing the generator (or its end) resumes it.
    with _collector_paused():
        pairs = list(zip(subjects, builds(subjects, packages, data), strict=True))
        for start in range(0, len(pairs), BATCH):
            batch: list[Vulnerability] = []
            for subject, build in pairs[start:start + BATCH]:
                judged = run.judged(subject, build)
                if min_cvss > 0:
                    judged = [j for j in judged if keep(j[0])]
                host, port = subject.host, subject.port
                batch.extend([_record(host, port, f) for _, f in judged])
            yield from batch
        yield from _inventory_findings(catalog, packages, run.reported, keep)


def _judge_subject(catalog: Catalog, name: str, what: tuple[str, str, str], hits: list[Hit],
                   build: distro.DistroBuild, where: tuple[str, str, str] | None,
                   version: str | None, exact: str) -> tuple[list[Judged], set[str]]:
    """The findings of one product version on one build, and the CVE ids considered."""
    head = f"{name} {what[2]} ({product_key(what[0], what[1])})"
    statements = catalog.fixes.package(*where) if where else {}
    out: list[Judged] = []
    if not statements:
        # every hit gets the same verdict: the findings differ by their entry alone (the
        # common case, and the hot loop of a large evaluation: kept to tuple building)
        plain = judge(None, build, version, exact, True)
        if plain is None:
            return out, {h.id for h in hits}
        method, level, tail, kev = plain.method, quality.QUALITY[plain.method], f"; {plain.why}", catalog.kev
        for hit in hits:
            e = hit.entry
            severity = severity_of(e.cvss) if e.cvss is not None else e.severity or "info"
            out.append((e, (e.id, e.title, severity, e.cvss, f"{head} {hit.text}{tail}", e.references,
                            e.source, level, method, e.kev or e.id in kev)))
        return out, {h.id for h in hits}
    for hit in hits:
        fix = statements.get(hit.entry.id)
        verdict = judge(fix, build, version, exact, True)
        if verdict is not None:
            out.append((hit.entry, _fields(catalog, hit.entry.id, hit.entry, fix, verdict,
                                           f"{head} {hit.text}; {verdict.why}")))
    considered = {h.id for h in hits}
    # The distribution's statements of CVEs no upstream range names: only those the build
    # does not satisfy can prove anything (a distribution build without its revision is
    # probed with its upstream version alone, below every revision of it).
    probe = version
    if probe is None and build.upstream_version:
        probe = f"{build.epoch}:{build.upstream_version}" if build.epoch else build.upstream_version
    named = set(considered)
    for fix in catalog.fixes.open_for(*where, probe) if probe and where else ():
        entry = catalog.entry(fix.cve)
        if fix.cve in named or (entry is not None and entry.role == "client"):
            continue
        considered.add(fix.cve)
        verdict = judge(fix, build, version, exact, False)
        if verdict is not None:
            out.append((entry, _fields(catalog, fix.cve, entry, fix, verdict, f"{head}: {verdict.why}")))
    out.sort(key=lambda j: j[1][0])
    return out, considered


def _inventory_findings(catalog: Catalog, packages: Mapping[str, Inventory],
                        reported: set[tuple[str, str, str]], keep: Any) -> Iterator[Vulnerability]:
    """Every statement of the hosts' distributions about their installed source packages
    that no service's finding covered: the host's own programs, clients included."""
    for host, inv in sorted(packages.items()):
        if inv.distribution not in ECOSYSTEM:
            continue
        for source, version in sorted(inv.sources.items()):
            for fix in catalog.fixes.open_for(inv.distribution, inv.release, source, version):
                ident = fix.cve
                if (host, source, ident) in reported:
                    continue
                entry = catalog.entry(ident)
                if not keep(entry):
                    continue
                verdict = judge(fix, distro.DistroBuild(product=source, upstream_version=None,
                                                        distribution=inv.distribution,
                                                        release=inv.release, source_package=source),
                                version, quality.PACKAGE, False)
                if verdict is not None:
                    yield _record(host, None, _fields(catalog, ident, entry, fix, verdict,
                                                      f"installed package {source} {version}: "
                                                      f"{verdict.why}"))
