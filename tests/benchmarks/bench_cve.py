"""Benchmark: cve_matcher's evaluation of 10,000 fingerprints against a 200,000-entry catalog.

Not a test: run it as a script and read the lines it prints::

    .venv/bin/python tests/benchmarks/bench_cve.py [--entries 200000] [--fingerprints 10000]
                                                   [--products 5000] [--nvd]

The catalog is synthetic and seeded: ``--products`` products whose sizes are skewed as
NVD's are (a fifth of the entries on 20 "hot" products of ~2,000 entries each, the rest
spread over the others); each entry has one to three affected ranges one to four minor
releases wide (3% of them open below: "before X"; dotted versions, some with OpenSSH-style
``p`` levels), or an exact version. Fingerprints pick products with
the same skew (so most land on the big ones: the hard case for a per-product walk) and
mostly distinct versions, about one in four unknown to the catalog.

Distribution builds. Four of the hot products are real ones whose builds ``kit.distro``
recognises (OpenSSH, PHP, Apache httpd, nginx); their entries cover the upstream versions
that Debian 11/12 and Ubuntu 22.04/24.04 ship, and carry the distributions' statements
(``FixIndex`` of ``DistroFix``: fixed in a revision, not affected, or still vulnerable),
as do a share of the synthetic entries (under their own source package names), about as
many statements as entries. ``--distro-share`` of the fingerprints (0.3) are such builds, as
the fingerprinter and the web fingerprinter write them: OpenSSH and PHP with the package
revision in the banner (``SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3``,
``X-Powered-By: PHP/8.2.7-1~deb12u4``), Apache and nginx with a ``(Debian)`` token only.
Subjects are made from those records by ``cve_matcher.as_subject``.

Timed (``gc.collect()`` first):

* ``fixes``     ``FixIndex(statements)``: the distributions' statements by package, and
  ``kit.distro.load_data()``, the file naming distributions' builds (loaded once per process)
* ``index``     ``Catalog(entries, fixes=...)``: the index by product, ranges sorted by lower bound
* ``evaluate``  ``evaluate(catalog, subjects)`` consumed to the last finding, with the version
  cache emptied first; the target is under 1 s (the ratio to it is printed), and the
  findings are counted by ``method``
* ``linear``    the peer: the same question answered by scanning every entry (and, for a
  distribution build, every statement) for every fingerprint, timed on a sample and scaled
  to all fingerprints (ratio printed)
* ``nvd-load``  with ``--nvd``: the same catalog written as an NVD CVE JSON 2.0 file and
  read back through ``load_catalog`` (parse, check, index), for information

``entries/s`` is catalog entries evaluated per second: entries x fingerprints / time.
Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pentora_plugins.cve.catalog import Catalog, Entry, Range
from pentora_plugins.cve.cve_matcher import Subject, as_subject, evaluate
from pentora_plugins.cve.fixes import DistroFix, FixIndex
from pentora_plugins.cve.sources import load_catalog
from pentora_plugins.cve.version import version_key
from pentora_plugins.kit import distro

SEED = 20261129
TARGET_S = 1.0
DISTRO_SHARE = 0.3      # of the fingerprints: distribution builds
SYNTHETIC_FIXED = 0.3   # of the synthetic entries: with distributions' statements too
HOT_PRODUCTS = 20
HOT_SHARE = 0.2
LINEAR_SAMPLE = 40
OPEN_START = 0.97  # share of ranges with a lower bound (the rest: 'before X')


@dataclass(frozen=True)
class Shipped:
    """An upstream version one distribution release ships, and how its revisions read."""

    distribution: str     # kit.distro id
    release: str
    token: str            # the word banners use: Debian, Ubuntu
    source: str           # the distribution's source package
    upstream: str
    revision: str | None  # "{k}" the security update's number; None: the banner shows no revision
    epoch: str = ""

    def package_version(self, k: int) -> str:
        return f"{self.epoch}{self.upstream}-{(self.revision or '1').format(k=k)}"


# Real products, whose builds kit.distro recognises, and what each release ships.
REAL: dict[tuple[str, str], tuple[Shipped, ...]] = {
    ("openbsd", "openssh"): (
        Shipped("debian", "11", "Debian", "openssh", "8.4p1", "5+deb11u{k}", "1:"),
        Shipped("debian", "12", "Debian", "openssh", "9.2p1", "2+deb12u{k}", "1:"),
        Shipped("ubuntu", "22.04", "Ubuntu", "openssh", "8.9p1", "3ubuntu0.{k}", "1:"),
        Shipped("ubuntu", "24.04", "Ubuntu", "openssh", "9.6p1", "3ubuntu13.{k}", "1:")),
    ("php", "php"): (
        Shipped("debian", "12", "Debian", "php8.2", "8.2.7", "1~deb12u{k}"),
        Shipped("ubuntu", "22.04", "Ubuntu", "php8.1", "8.1.2", "1ubuntu2.{k}")),
    ("apache", "http_server"): (
        Shipped("debian", "12", "Debian", "apache2", "2.4.57", None),
        Shipped("ubuntu", "22.04", "Ubuntu", "apache2", "2.4.52", None)),
    ("f5", "nginx"): (
        Shipped("debian", "12", "Debian", "nginx", "1.22.1", None),
        Shipped("ubuntu", "24.04", "Ubuntu", "nginx", "1.24.0", None)),
}
MAX_UPDATE = 16  # security updates per release: revisions 1..16
REAL_COVER = 0.03  # of a real product's ranges: covering a shipped version


def product_names(n: int) -> list[tuple[str, str]]:
    """The real products first (so among the hot ones), then synthetic ones."""
    return [*REAL, *((f"vendor{i}", f"product{i}") for i in range(max(0, n - len(REAL))))]


def pick_product(rng: random.Random, n: int) -> int:
    return rng.randrange(HOT_PRODUCTS) if rng.random() < HOT_SHARE else rng.randrange(n)


def rand_version(rng: random.Random) -> str:
    v = f"{rng.randrange(12)}.{rng.randrange(30)}.{rng.randrange(40)}"
    return v + (f"p{rng.randrange(1, 3)}" if rng.random() < 0.1 else "")


def real_range(rng: random.Random, shipped: tuple[Shipped, ...]) -> Range:
    """A range of a real product's advisory: one in ``REAL_COVER`` covers the upstream version
    a release ships (from an earlier release, before a later one), as a real product has some
    dozens of CVEs for a shipped version; the others are of old release lines (0.x)."""
    if rng.random() >= REAL_COVER:
        lo = f"0.{rng.randrange(100)}"
        return Range(start=lo, end=f"{lo}.{rng.randint(1, 9)}")
    up = rng.choice(shipped).upstream
    lower = sorted(s.upstream for s in shipped)[0] if rng.random() < 0.5 else None
    return Range(start=lower if lower and lower <= up else None, end=up + ".99")


def statement(rng: random.Random, cve: str, shipped: Shipped, ranges: list[Range]) -> DistroFix:
    """A distribution's word on one CVE in one release, as its tracker gives one for every
    CVE of the package: a CVE of an older release line was fixed before the release
    shipped (or never affected it); one in the shipped version's range is mostly fixed in
    some security update, sometimes not yet."""
    common = {"cve": cve, "distribution": shipped.distribution, "release": shipped.release,
              "package": shipped.source, "advisory": "DSA-0000-1", "source": "bench"}
    if not any(r.contains(version_key(shipped.upstream)) for r in ranges):
        if rng.random() < 0.85:
            return DistroFix(**common, status="fixed",
                             fixed=f"{shipped.epoch}0.{rng.randrange(100)}-{rng.randint(1, 9)}")
        return DistroFix(**common, status="not-affected")
    roll = rng.random()
    if roll < 0.8:
        return DistroFix(**common, status="fixed",
                         fixed=shipped.package_version(rng.randint(1, MAX_UPDATE)))
    return DistroFix(**common, status="vulnerable" if roll < 0.9 else "not-affected")


def synthetic_statements(rng: random.Random, cve: str, product: str) -> list[DistroFix]:
    """Statements for a synthetic product: Debian 12 and Ubuntu 22.04 packages of its name."""
    return [DistroFix(cve=cve, distribution=d, release=r, package=product, status="fixed",
                      fixed=f"{rng.randrange(12)}.{rng.randrange(30)}-{rng.randint(1, 9)}{suffix}",
                      source="bench")
            for d, r, suffix in (("debian", "12", "+deb12u1"), ("ubuntu", "22.04", "ubuntu0.1"))
            if rng.random() < 0.7]


def make_entries(rng: random.Random, count: int,
                 products: list[tuple[str, str]]) -> tuple[list[Entry], list[DistroFix]]:
    out = []
    fixes: list[DistroFix] = []
    for i in range(count):
        vendor, product = products[pick_product(rng, len(products))]
        cve = f"CVE-2099-{i:06d}"
        ranges: list[Range] = []
        versions: tuple[str, ...] = ()
        shipped = REAL.get((vendor, product))
        if shipped:
            ranges = [real_range(rng, shipped) for _ in range(rng.randint(1, 2))]
            fixes.extend(statement(rng, cve, s, ranges) for s in shipped)
        elif rng.random() < 0.15:
            versions = (rand_version(rng),)
        else:
            for _ in range(rng.randint(1, 3)):
                lo = rand_version(rng)
                hi = f"{lo.split('.')[0]}.{int(lo.split('.')[1]) + rng.randint(1, 4)}.0"
                ranges.append(Range(start=lo if rng.random() < OPEN_START else None, end=hi))
        if not shipped and rng.random() < SYNTHETIC_FIXED:
            fixes.extend(synthetic_statements(rng, cve, product))
        out.append(Entry(id=cve, product=f"{vendor}:{product}", title="synthetic",
                         cvss=round(rng.uniform(1, 10), 1), ranges=tuple(ranges), versions=versions,
                         references=(f"https://example.invalid/{i}",), source="bench",
                         role="server"))
    return out, fixes


def cpe(vendor: str, product: str, version: str) -> str:
    return f"cpe:2.3:a:{vendor}:{product}:{version}:*:*:*:*:*:*:*"


def distro_record(rng: random.Random, host: str) -> dict[str, Any]:
    """A fingerprint (or web technology) of a distribution build, as the modules write it."""
    (vendor, product), shipped = rng.choice(list(REAL.items()))
    s = rng.choice(shipped)
    os_hint = {"family": "Linux", "distribution": s.token, "release": s.release}
    rev = s.package_version(rng.randint(0, MAX_UPDATE)).split(":", 1)[-1].split("-", 1)[1]
    base = {"host": host, "version": s.upstream, "cpe": cpe(vendor, product, s.upstream)}
    if product == "openssh":
        return {**base, "port": 22, "product": "OpenSSH", "confidence": 0.95, "os": os_hint,
                "info": "protocol 2.0",
                "evidence": f'ssh-openssh [passive]: "SSH-2.0-OpenSSH_{s.upstream} {s.token}-{rev}"'}
    if product == "php":  # web_technologies: a name, no OS hint
        return {**base, "port": 443, "name": "PHP", "confidence": 0.9,
                "evidence": f"header x-powered-by: PHP/{s.upstream}-{rev}"}
    name, server = ("Apache httpd", "Apache") if product == "http_server" else ("nginx", "nginx")
    return {**base, "port": 443, "product": name, "confidence": 0.92, "os": os_hint,
            "evidence": f'http-{server.lower()} [http_get]: "Server: {server}/{s.upstream} ({s.token})"'}


def make_subjects(rng: random.Random, count: int, products: list[tuple[str, str]],
                  distro_share: float = DISTRO_SHARE) -> list[Subject]:
    out = []
    for i in range(count):
        host = f"198.18.{i // 250}.{i % 250 + 1}"
        if rng.random() < distro_share:
            record = distro_record(rng, host)
        else:
            unknown = rng.random() < 0.25
            vendor, product = ("nobody", f"x{i}") if unknown else products[pick_product(rng, len(products))]
            version = rand_version(rng)
            record = {"host": host, "port": 443, "product": product, "version": version,
                      "cpe": cpe(vendor, product, version), "confidence": 0.95, "evidence": ""}
        subject = as_subject(record)
        assert subject is not None
        out.append(subject)
    return out


def linear_scan(entries: list[Entry], subject: Subject) -> int:
    """The peer: every entry, every range, for one fingerprint."""
    key = version_key(subject.version or "")
    wanted = subject.cpe.split(":")[3] + ":" + subject.cpe.split(":")[4] if subject.cpe else ""
    hits = 0
    for e in entries:
        if e.product == wanted and (any(r.contains(key) for r in e.ranges)
                                    or any(version_key(v) == key for v in e.versions)):
            hits += 1
    return hits


def linear_statements(fixes: list[DistroFix], subject: Subject) -> int:
    """The peer's distribution half: every statement, for one distribution build (the
    statements about its source package, in any release)."""
    shipped = REAL.get(tuple(subject.cpe.split(":")[3:5])) if subject.cpe else None  # type: ignore[arg-type]
    if not shipped:
        return 0
    sources = {s.source for s in shipped}
    return sum(1 for f in fixes if f.package in sources)


def timed(fn):  # type: ignore[no-untyped-def]
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def nvd_roundtrip(entries: list[Entry]) -> tuple[int, float]:
    def cve(e: Entry) -> dict[str, object]:
        vendor, product = e.product.split(":")
        matches: list[dict[str, object]] = [
            {"vulnerable": True, "criteria": f"cpe:2.3:a:{vendor}:{product}:*:*:*:*:*:*:*:*",
             **({"versionStartIncluding": r.start} if r.start else {}),
             "versionEndExcluding": r.end} for r in e.ranges]
        matches += [{"vulnerable": True, "criteria": f"cpe:2.3:a:{vendor}:{product}:{v}:*:*:*:*:*:*:*"}
                    for v in e.versions]
        return {"cve": {"id": e.id, "descriptions": [{"lang": "en", "value": e.title}],
                        "metrics": {"cvssMetricV31": [{"type": "Primary",
                                                       "cvssData": {"baseScore": e.cvss}}]},
                        "configurations": [{"nodes": [{"operator": "OR", "cpeMatch": matches}]}],
                        "references": [{"url": u} for u in e.references]}}

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nvd-synthetic.json"
        path.write_text(json.dumps({"format": "NVD_CVE", "version": "2.0",
                                    "vulnerabilities": [cve(e) for e in entries]}))
        catalog, seconds = timed(lambda: load_catalog([str(path)]))
        return len(catalog), seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--fingerprints", type=int, default=10_000)
    ap.add_argument("--products", type=int, default=5_000)
    ap.add_argument("--distro-share", type=float, default=DISTRO_SHARE,
                    help="share of the fingerprints that are distribution builds (0-1)")
    ap.add_argument("--nvd", action="store_true", help="also time loading the catalog as an NVD file")
    args = ap.parse_args(argv)
    rng = random.Random(SEED)
    products = product_names(args.products)
    entries, statements = make_entries(rng, args.entries, products)
    subjects = make_subjects(rng, args.fingerprints, products, args.distro_share)

    # the distributions' statements by package, and the data file that names distributions'
    # builds (read once per process, as the catalog is: not part of an evaluation)
    fixes, t_fixes = timed(lambda: (distro.load_data(), FixIndex(statements))[1])
    catalog, t_index = timed(lambda: Catalog(entries, fixes=fixes))
    version_key.cache_clear()
    findings, t_eval = timed(lambda: list(evaluate(catalog, subjects)))
    sample = subjects[:LINEAR_SAMPLE]
    linear_hits, t_sample = timed(lambda: sum(linear_scan(entries, s) for s in sample))
    _, t_statements = timed(lambda: sum(linear_statements(statements, s) for s in sample))
    t_sample += t_statements
    indexed_hits = sum(len(catalog.find(*s.cpe.split(":")[3:6])) for s in sample)  # type: ignore[union-attr]
    assert linear_hits == indexed_hits, (linear_hits, indexed_hits)  # same answers as the peer
    t_linear = t_sample / len(sample) * len(subjects)

    evaluated = len(catalog) * len(subjects)
    builds = sum(1 for s in subjects if s.cpe and tuple(s.cpe.split(":")[3:5]) in REAL)
    methods = Counter(str(getattr(v, "method", None)) for v in findings)
    print(f"catalog: {len(catalog):,} entries over {len(catalog.products()):,} products, "
          f"{len(fixes):,} distribution statements over {len(fixes.releases())} releases; "
          f"{len(subjects):,} fingerprints ({len({(s.cpe) for s in subjects}):,} distinct product "
          f"versions, {builds:,} distribution builds); {len(findings):,} findings "
          f"(by method: {', '.join(f'{m} {n:,}' for m, n in methods.most_common())})")
    print(f"fixes     {t_fixes:8.3f} s")
    print(f"index     {t_index:8.3f} s")
    print(f"evaluate  {t_eval:8.3f} s   {len(subjects) / t_eval:,.0f} fingerprints/s   "
          f"{evaluated / t_eval:,.0f} entries/s   target < {TARGET_S:.0f} s: "
          f"{t_eval / TARGET_S:.2f} of it, {'PASS' if t_eval < TARGET_S else 'MISS'}")
    print(f"linear    {t_linear:8.3f} s   (peer: scan every entry, and every statement for a "
          f"distribution build, per fingerprint; {LINEAR_SAMPLE} "
          f"timed, scaled to {len(subjects):,}; same hits on the sample)   "
          f"index is {t_linear / t_eval:,.0f}x faster")
    if args.nvd:
        size, t_load = nvd_roundtrip(entries)
        print(f"nvd-load  {t_load:8.3f} s   ({size:,} entries parsed from an NVD CVE JSON 2.0 file, "
              f"checked and indexed)")
    return 0 if t_eval < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
