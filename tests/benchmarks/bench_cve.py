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

Timed (``gc.collect()`` first):

* ``index``     ``Catalog(entries)``: the index by product, ranges sorted by lower bound
* ``evaluate``  ``evaluate(catalog, subjects)`` consumed to the last finding, with the version
  cache emptied first; the target is under 2 s
* ``linear``    the peer: the same question answered by scanning every entry for every
  fingerprint, timed on a sample and scaled to all fingerprints (ratio printed)
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
from pathlib import Path

from pentora_plugins.cve.catalog import Catalog, Entry, Range
from pentora_plugins.cve.cve_matcher import Subject, evaluate
from pentora_plugins.cve.sources import load_catalog
from pentora_plugins.cve.version import version_key

SEED = 20261129
TARGET_S = 2.0
HOT_PRODUCTS = 20
HOT_SHARE = 0.2
LINEAR_SAMPLE = 40
OPEN_START = 0.97  # share of ranges with a lower bound (the rest: 'before X')


def product_names(n: int) -> list[tuple[str, str]]:
    return [(f"vendor{i}", f"product{i}") for i in range(n)]


def pick_product(rng: random.Random, n: int) -> int:
    return rng.randrange(HOT_PRODUCTS) if rng.random() < HOT_SHARE else rng.randrange(n)


def rand_version(rng: random.Random) -> str:
    v = f"{rng.randrange(12)}.{rng.randrange(30)}.{rng.randrange(40)}"
    return v + (f"p{rng.randrange(1, 3)}" if rng.random() < 0.1 else "")


def make_entries(rng: random.Random, count: int, products: list[tuple[str, str]]) -> list[Entry]:
    out = []
    for i in range(count):
        vendor, product = products[pick_product(rng, len(products))]
        ranges: list[Range] = []
        versions: tuple[str, ...] = ()
        if rng.random() < 0.15:
            versions = (rand_version(rng),)
        else:
            for _ in range(rng.randint(1, 3)):
                lo = rand_version(rng)
                hi = f"{lo.split('.')[0]}.{int(lo.split('.')[1]) + rng.randint(1, 4)}.0"
                ranges.append(Range(start=lo if rng.random() < OPEN_START else None, end=hi))
        out.append(Entry(id=f"CVE-2099-{i:06d}", product=f"{vendor}:{product}", title="synthetic",
                         cvss=round(rng.uniform(1, 10), 1), ranges=tuple(ranges), versions=versions,
                         references=(f"https://example.invalid/{i}",), source="bench"))
    return out


def make_subjects(rng: random.Random, count: int, products: list[tuple[str, str]]) -> list[Subject]:
    out = []
    for i in range(count):
        unknown = rng.random() < 0.25
        vendor, product = ("nobody", f"x{i}") if unknown else products[pick_product(rng, len(products))]
        version = rand_version(rng)
        out.append(Subject(host=f"198.18.{i // 250}.{i % 250 + 1}", port=443, product=product,
                           version=version, cpe=f"cpe:2.3:a:{vendor}:{product}:{version}:*:*:*:*:*:*:*",
                           confidence=0.95, evidence="", distro=None))
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
    ap.add_argument("--nvd", action="store_true", help="also time loading the catalog as an NVD file")
    args = ap.parse_args(argv)
    rng = random.Random(SEED)
    products = product_names(args.products)
    entries = make_entries(rng, args.entries, products)
    subjects = make_subjects(rng, args.fingerprints, products)

    catalog, t_index = timed(lambda: Catalog(entries))
    version_key.cache_clear()
    findings, t_eval = timed(lambda: list(evaluate(catalog, subjects)))
    sample = subjects[:LINEAR_SAMPLE]
    linear_hits, t_sample = timed(lambda: sum(linear_scan(entries, s) for s in sample))
    indexed_hits = sum(len(catalog.find(*s.cpe.split(":")[3:6])) for s in sample)  # type: ignore[union-attr]
    assert linear_hits == indexed_hits, (linear_hits, indexed_hits)  # same answers as the peer
    t_linear = t_sample / len(sample) * len(subjects)

    evaluated = len(catalog) * len(subjects)
    print(f"catalog: {len(catalog):,} entries over {len(catalog.products()):,} products; "
          f"{len(subjects):,} fingerprints ({len({(s.cpe) for s in subjects}):,} distinct product "
          f"versions); {len(findings):,} findings")
    print(f"index     {t_index:8.3f} s")
    print(f"evaluate  {t_eval:8.3f} s   {len(subjects) / t_eval:,.0f} fingerprints/s   "
          f"{evaluated / t_eval:,.0f} entries/s   target < {TARGET_S:.0f} s: "
          f"{'PASS' if t_eval < TARGET_S else 'MISS'}")
    print(f"linear    {t_linear:8.3f} s   (peer: scan every entry per fingerprint; {LINEAR_SAMPLE} "
          f"timed, scaled to {len(subjects):,}; same hits on the sample)   "
          f"index is {t_linear / t_eval:,.0f}x faster")
    if args.nvd:
        size, t_load = nvd_roundtrip(entries)
        print(f"nvd-load  {t_load:8.3f} s   ({size:,} entries parsed from an NVD CVE JSON 2.0 file, "
              f"checked and indexed)")
    return 0 if t_eval < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
