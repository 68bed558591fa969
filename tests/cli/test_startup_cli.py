"""What answers before the engine is imported (``--version``, shell completion), and
``pentora profiles``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pentora

HEAVY = ("gevent", "loguru", "pluggy", "pentora_plugins", "pentora._orchestrator")


def _imported_after(code: str) -> set[str]:
    """The heavy modules a fresh interpreter holds after running ``code``."""
    probe = code + f"\nimport sys; print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    return {m for m in last.removeprefix("loaded:").split(",") if m}


def test_import_pentora_imports_no_engine() -> None:
    assert _imported_after("import pentora, pentora.cli") == set()


def test_version_answers_before_the_engine_is_imported() -> None:
    code = "from pentora.cli import main\nassert main(['--version']) == 0"
    assert _imported_after(code) == set()


def test_first_public_name_brings_the_whole_api() -> None:
    code = ("import pentora\nassert pentora.Module.__name__ == 'Module'\n"
            "missing = [n for n in pentora.__all__ if not hasattr(pentora, n)]\n"
            "assert not missing, missing")
    assert "gevent" in _imported_after(code)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        pentora.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("pentora.no_such_name resolved")


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from pentora import *", namespace)
    assert {"Module", "Orchestrator", "hookimpl", "__version__"} <= set(namespace)
    namespace = {}
    exec("from pentora.cli import *", namespace)
    assert {"CliError", "EXIT_FINDINGS", "main"} <= set(namespace)


def test_version_anywhere_argparse_accepts_it(run_cli) -> None:
    # Both paths, the early one and argparse's, print the same line.
    for args in (["--version"], ["--version", "scan"]):
        proc = run_cli(*args)
        assert (proc.returncode, proc.stdout) == (0, f"pentora {pentora.__version__}\n"), args


# -- pentora profiles -----------------------------------------------------------------------

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _description(path: Path) -> str:
    return pentora.load_dag(path).description


def test_profiles_table_shows_each_description(run_cli) -> None:
    proc = run_cli("profiles")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION"]
    rows = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in lines[1:]}
    assert set(rows) == {p.stem for p in DAGS.glob("*.yaml")}
    for name, description in rows.items():
        assert description == _description(DAGS / f"{name}.yaml"), name
        assert description, f"{name}.yaml has no description:"


def test_profiles_json(run_cli) -> None:
    proc = run_cli("profiles", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert [p["name"] for p in listed] == sorted(p.stem for p in DAGS.glob("*.yaml"))
    for p in listed:
        assert p["description"] == _description(Path(p["path"]))


def test_profiles_lists_a_broken_profile_with_its_problem(run_cli, tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nnodes: [\n")
    (tmp_path / "good.yaml").write_text(
        "name: good\ndescription: Only a noop.\nnodes:\n  - instance_id: a\n    module_type: noop\n")
    hooks = tmp_path / "dirs.py"
    hooks.write_text("import pentora\n\n\n@pentora.hookimpl\ndef pentora_profile_dirs():\n"
                     f"    return [{str(tmp_path)!r}]\n")
    proc = run_cli("profiles", "--hooks", str(hooks))
    assert proc.returncode == 0, proc.stderr
    rows = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in proc.stdout.splitlines()[1:]}
    assert rows["good"] == "Only a noop."
    assert rows["broken"].startswith("(does not parse: 1 problem, the first: invalid YAML")
    assert "pentora dag validate broken" in rows["broken"]
    assert "standard" in rows


def test_profiles_none_installed(run_cli) -> None:
    proc = run_cli("profiles", "-p", "no:engine.profiles")
    assert (proc.returncode, proc.stdout) == (0, "no profiles installed\n")
