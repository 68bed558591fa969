"""How many hostile cases and malformed inputs the suite tries; with ``--run``, the time of
each hostile case against its deadline and the peak memory of the endless stream.

    .venv/bin/python tests/hostile/count.py          # the counts (imports only, no scan)
    .venv/bin/python tests/hostile/count.py --run    # and runs tests/hostile for the figures

Hypothesis examples are each property's ``max_examples`` (an upper bound per run: fewer
when the strategy is exhausted); explicit ``@example``s are not counted.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROPERTY_MODULES = ["tests.unit.test_parse_hypothesis", "tests.plugins.test_props_scan_inputs",
                    "tests.plugins.test_props_version", "tests.plugins.test_portspec",
                    "tests.plugins.test_targets", "tests.plugins.test_fingerprint"]


def property_examples() -> list[tuple[str, int]]:
    out = []
    for name in PROPERTY_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - a module that cannot load is reported, not fatal
            out.append((f"{name} (not loaded: {type(e).__name__})", 0))
            continue
        for attr in sorted(vars(module)):
            fn: Any = getattr(module, attr)
            settings = getattr(fn, "_hypothesis_internal_use_settings", None)
            if attr.startswith("test_") and getattr(fn, "is_hypothesis_test", False) and settings:
                out.append((f"{name.rsplit('.', 1)[-1]}::{attr}", settings.max_examples))
    return out


def collected(*args: str) -> int:
    """How many tests pytest collects for ``args`` (collection only: nothing runs)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *args], cwd=ROOT, capture_output=True, text=True)
    return sum(1 for line in out.stdout.splitlines() if "::" in line)


def counts() -> list[tuple[str, int]]:
    from tests.fuzz.test_fuzz_seeds import BANNERS, DAGS
    from tests.hostile.test_dag_safety import DAGS as SAFETY_DAGS
    from tests.hostile.test_descriptor_limits import LIMITS as FD_LIMITS
    from tests.hostile.test_hostile_patterns import CASES as PATTERN_CASES
    from tests.hostile.test_hostile_targets import CASES, OPTIONAL_CONFIG, SSH_CASES
    from tests.hostile.test_local_inputs import COMMANDS, KINDS
    from tests.hostile.test_resource_faults import RESOLVERS
    from tests.plugins.test_syn_scan import RATE_RUNS as SYN_RATE_RUNS

    malformed = [p for p in (ROOT / "tests" / "data" / "malformed").rglob("*")
                 if p.is_file() and p.name != "expected.yaml"]
    examples = property_examples()
    return [
        ("hostile servers (kinds of misbehaviour)", len(CASES) + len(SSH_CASES) + 1),
        ("hostile target scans: banner pipeline", len(CASES)),
        (f"hostile target scans: {' + '.join(sorted(OPTIONAL_CONFIG))}", len(CASES) * len(OPTIONAL_CONFIG)),
        ("hostile target scans: ssh_checks (no, bogus, endless or dripped KEXINIT)", len(SSH_CASES)),
        ("hostile target scans: cve_matcher on a 5,000-digit version", 1),
        ("endless-stream memory runs (own process)", 3),
        ("backtracking catalog patterns on 100 kB (own process) + look-ahead refused",
         len(PATTERN_CASES) + 1),
        ("resource faults: out of descriptors", 1),
        ("resource faults: DNS down (refused, silent, unroutable, hung)", len(RESOLVERS)),
        ("DAGs that try to load code (x validate, run) + --hooks control + sub-DAG tags",
         len(SAFETY_DAGS) * 2 + 1 + 3),
        ("local inputs: device, FIFO, directory (x commands) + endless stdin",
         len(COMMANDS) * len(KINDS) + 1),
        ("local inputs: hostile --set and DAG values + a target file not echoed", 4 * 2 + 3 * 2 + 2 + 1),
        ("misbehaving modules and hooks: exit, BaseException, wrong return, blocking, spinning, "
         "signals, uninterruptible", collected("tests/hostile/test_misbehaving_modules.py")),
        ("terminal output of every printing command on hostile data",
         collected("tests/hostile/test_terminal_output.py")),
        ("descriptor starvation against an unstarved run (scans x ulimit -n 24, 16, 12)",
         collected("tests/hostile/test_descriptor_limits.py") * len(FD_LIMITS)),
        ("outputs of runs killed, interrupted, dying or failing",
         collected("tests/hostile/test_output_kills.py")),
        ("crafted, damaged and locked scan stores",
         collected("tests/plugins/test_store.py", "tests/cli/test_scans_cli.py", "-k",
                   "crafted or damaged or repair or locked or earlier_version or codec")),
        ("rate-limited SYN scans in a fresh namespace (runs)", SYN_RATE_RUNS),
        ("Celery: killed worker, cancelled scan, stopped shard, duplicate result",
         collected("tests/integration/test_celery.py", "tests/plugins/test_shard.py", "-k",
                   "killed or cancelled or twice or running_shard")),
        ("malformed-DAG corpus files (tests/data/malformed)", len(malformed)),
        ("fuzz seeds: banners (corpus + labelled banners)", len(BANNERS)),
        ("fuzz seeds: DAG files (corpus + malformed + profiles)", len(DAGS)),
        (f"hypothesis examples, {len(examples)} properties (max per run)", sum(n for _, n in examples)),
    ]


def table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{label:<{width}}  {value:>7}" for label, value in rows)


def run_figures() -> list[str]:
    """Run tests/hostile and keep the lines its tests print (``HOSTILE ...``)."""
    command = [sys.executable, "-m", "pytest", "tests/hostile", "-q", "-s", "-p", "no:cacheprovider"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line.removeprefix("HOSTILE ") for line in out.stdout.splitlines() if line.startswith("HOSTILE ")]
    return lines + [out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-500:]]


def main() -> None:
    print(table(counts()))
    if "--run" in sys.argv[1:]:
        print("\ncase                                node           time     deadline")
        print("\n".join(run_figures()))


if __name__ == "__main__":
    main()
