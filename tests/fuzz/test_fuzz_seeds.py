"""The fuzz harnesses' targets over their seed corpora, so that the harnesses cannot rot.

Each seed goes through the same ``test_one_input`` atheris calls: the committed seeds
(``tests/fuzz/corpus/``), the crash reproducers kept after fixing them
(``tests/fuzz/crashes/``), the labelled banners of the fingerprint tests, the
malformed-DAG corpus and the built-in profiles. When atheris is installed, each harness
also runs under libFuzzer for a few hundred inputs.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TESTS
from tests.fuzz import fuzz_banner, fuzz_dag

FUZZ = TESTS / "fuzz"


def _files(*dirs: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for d in dirs if d.is_dir() for p in d.rglob(pattern) if p.is_file())


def banner_seeds() -> list[tuple[str, bytes]]:
    committed = _files(FUZZ / "corpus" / "banner", FUZZ / "crashes" / "banner")
    seeds = [(p.name, p.read_bytes()) for p in committed]
    labelled = yaml.safe_load((TESTS / "data" / "banners" / "labelled.yaml").read_text(encoding="utf-8"))
    for entry in labelled["banners"]:
        for i, b in enumerate(entry.get("banners") or [entry]):
            seeds.append((f"{entry['name']}#{i}", str(b["data"]).encode("latin-1")))
    return seeds


def dag_seeds() -> list[tuple[str, bytes]]:
    files = _files(FUZZ / "corpus" / "dag", FUZZ / "crashes" / "dag", TESTS / "data" / "malformed",
                   ROOT / "dags", pattern="*.*")
    return [(str(p.relative_to(ROOT)), p.read_bytes()) for p in files if p.suffix != ".py"]


BANNERS = banner_seeds()
DAGS = dag_seeds()


def test_the_seed_corpora_are_there() -> None:
    assert len(BANNERS) > 300 and len(DAGS) > 100  # labelled banners and the malformed corpus included


@pytest.mark.parametrize(("name", "data"), BANNERS, ids=[n for n, _ in BANNERS])
def test_banner_target_over_its_seeds(name: str, data: bytes) -> None:
    fuzz_banner.test_one_input(data)


@pytest.mark.parametrize(("name", "data"), DAGS, ids=[n for n, _ in DAGS])
def test_dag_target_over_its_seeds(name: str, data: bytes) -> None:
    fuzz_dag.test_one_input(data)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("harness", ["fuzz_banner", "fuzz_dag"])
def test_harness_runs_under_libfuzzer(harness: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (pip install -e '.[fuzz]')")
    out = subprocess.run([sys.executable, str(FUZZ / f"{harness}.py"), "-runs=300", "-seed=1",
                          str(tmp_path), str(FUZZ / "corpus" / harness.removeprefix("fuzz_"))],
                         cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done 300 runs" in out.stderr
