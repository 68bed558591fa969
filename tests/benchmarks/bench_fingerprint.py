"""Benchmark: fingerprint_parser and webapp_fingerprinter over a corpus of banners and pages.

Not a test: run it as a script and read the lines it prints::

    .venv/bin/python tests/benchmarks/bench_fingerprint.py [--banners 5000] [--pages 2000]
                                                           [--repeat 3] [--profile]

The corpus is seeded and built from the labelled data of the catalog tests
(``tests/data/banners/labelled.yaml``, ``tests/data/webapps/samples.yaml``): each banner
is a labelled one, or one followed by seeded noise (printable text, or random bytes as a
binary protocol sends them) up to the 8 KB the rules read; each page is a labelled
response whose body is padded with seeded markup to 2-60 KB. Every rule of the built-in
catalogs runs on every banner and page, as in a scan.

Timed (best of ``--repeat``, ``gc.collect()`` first), each against its peer in the same
run: the same catalogs with every pattern compiled by Python's backtracking ``re`` (the
patterns as they were written for it, from the equivalence tests), through the same code:

* ``fingerprint``  ``fingerprint_banners`` over every banner, one port each
* ``webapp``       ``identify`` over every page (its well-known paths not fetched)

The ratio printed is RE2's time over Python re's (below 1: RE2 is faster).

``--profile`` runs each once more under pyinstrument and prints where the time went.
Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
MAX_BANNER = 8192


def labelled_banners() -> list[tuple[str, str]]:
    """(probe, data) of every labelled banner."""
    out = []
    for entry in yaml.safe_load((DATA / "banners" / "labelled.yaml").read_text())["banners"]:
        for b in entry.get("banners") or [entry]:
            out.append((b.get("probe", ""), b["data"]))
    return out


def make_banners(rng: random.Random, n: int) -> list[Any]:
    from pentora_plugins.kit.records import Banner

    base = labelled_banners()
    out = []
    for i in range(n):
        probe, data = rng.choice(base)
        kind = rng.random()
        if kind < 0.3:
            data += "".join(rng.choice("abcdefghij klmnop\r\n:=0123456789")
                            for _ in range(rng.randint(100, MAX_BANNER - len(data))))
        elif kind < 0.5:
            data += bytes(rng.getrandbits(8) for _ in range(rng.randint(100, 2000))).decode("latin-1")
        out.append(Banner(host=f"127.0.{i // 250}.{i % 250 + 1}", port=1000 + i % 50000,
                          probe=probe, data=data[:MAX_BANNER]))
    return out


def make_pages(rng: random.Random, n: int) -> list[Any]:
    from pentora_plugins.kit.net.http_facts import parse_cookies, title_of
    from pentora_plugins.kit.records import HttpResponse

    samples = yaml.safe_load((DATA / "webapps" / "samples.yaml").read_text())["samples"]
    filler = ['<div class="row"><p>Lorem ipsum dolor sit amet, consectetur.</p></div>\n',
              '<script src="/static/app.%d.js"></script>\n', '<a href="/page/%d">Page %d</a>\n',
              '<li data-id="%d">caf\u00e9 na\u00efve \u00fcber \u2013 item</li>\n']
    out = []
    for i in range(n):
        part = rng.choice(samples)["response"]
        body = part.get("body", "")
        size = rng.randint(2000, 60000)
        pad: list[str] = []
        length = 0
        while length < size:
            piece = rng.choice(filler)
            pad.append(piece % ((i,) * piece.count("%d")))
            length += len(pad[-1])
        cut = rng.randint(0, len(body))
        body = body[:cut] + "".join(pad) + body[cut:]
        out.append(HttpResponse(
            host="127.0.0.1", port=1000 + i, url=f"http://127.0.0.1:{1000 + i}/",
            status=part.get("status", 200),
            headers={k.lower(): str(v) for k, v in part.get("headers", {}).items()},
            cookies=parse_cookies([f"{c}=x" for c in part.get("cookies", [])]),
            body=body, title=title_of(body)))
    return out


def peer_catalogs(catalog: Any, web: Any) -> tuple[Any, Any]:
    """The same catalogs, every regex compiled by Python's ``re`` instead, in the form it
    had before RE2 where it was rewritten (RE2's ``\\z`` is Python's ``\\Z``)."""
    from tests.plugins.test_catalog_re2 import FINGERPRINTS_BEFORE, WEBAPPS_BEFORE

    rules = []
    for rule in catalog.rules:
        flags = re.ASCII
        for c in rule.regex.flags:
            flags |= {"i": re.I, "m": re.M, "s": re.S}[c]
        text = FINGERPRINTS_BEFORE.get(rule.id, rule.regex.pattern).replace("\\z", "\\Z")
        rules.append(dataclasses.replace(rule, regex=re.compile(text, flags)))
    techs = []
    for tech in web.technologies:
        matchers = tuple(m if m.regex is None else dataclasses.replace(
            m, regex=re.compile(WEBAPPS_BEFORE.get(f"{tech.id}.{n}", m.regex.pattern)
                                .replace("\\z", "\\Z"), re.I | re.ASCII))
            for n, m in enumerate(tech.matchers))
        techs.append(dataclasses.replace(tech, matchers=matchers))
    return (dataclasses.replace(catalog, rules=tuple(rules)),
            dataclasses.replace(web, technologies=tuple(techs)))


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(ROOT))
    from pentora_plugins.kit.catalog import load_catalog
    from pentora_plugins.services.fingerprint_parser import fingerprint_banners
    from pentora_plugins.web._rules import load_web_catalog
    from pentora_plugins.web.webapp_fingerprinter import identify

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--banners", type=int, default=5000)
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    banners, pages = make_banners(rng, args.banners), make_pages(rng, args.pages)
    catalog, web = load_catalog(), load_web_catalog()
    peer_catalog, peer_web = peer_catalogs(catalog, web)
    runs = {
        "fingerprint": (lambda: list(fingerprint_banners(catalog, banners)),
                        lambda: list(fingerprint_banners(peer_catalog, banners))),
        "webapp": (lambda: [identify(web, p) for p in pages],
                   lambda: [identify(peer_web, p) for p in pages]),
    }
    count = {"fingerprint": f"{len(banners):,} banners x {len(catalog.rules)} rules",
             "webapp": f"{len(pages):,} pages x {len(web.technologies)} technologies"}
    print(f"{'':<12} {'corpus':<36} {'RE2 / Python re':>16}  same results")
    for name, (fn, peer) in runs.items():
        took, peer_took = best_of(args.repeat, fn), best_of(args.repeat, peer)
        same = repr(fn()) == repr(peer())
        print(f"{name:<12} {count[name]:<36} {took / peer_took:16.3f}  {'yes' if same else 'NO'}")
        if args.profile:
            from pyinstrument import Profiler

            with Profiler() as profiler:
                fn()
            print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
