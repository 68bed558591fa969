"""DAG files can never run code: a DAG that names Python files, or that sits beside them,
loads none of them; only ``--hooks FILE`` does. YAML tags that build Python objects are
refused in a sub-DAG file as in the main one, naming the sub-DAG file's resolved path.

(Safe YAML in the main file, conditions without attribute access, calls or dunders, and
``subdag_file`` resolution are covered by tests/unit/test_parse.py,
tests/unit/test_parse_hypothesis.py and the malformed corpus of tests/unit/test_parse_corpus.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pentora
from pentora import DagParseError

PENTORA = Path(sys.executable).parent / "pentora"  # the console script: no current directory on sys.path
# Every .py file in the DAG's directory (and the working directory) would leave this mark.
PLANT = ("from pathlib import Path\n"
         "Path(__file__).with_suffix('.RAN').write_text('imported')\n"
         "import pentora\n"
         "@pentora.hookimpl\n"
         "def pentora_scan_start(*args, **kwargs):\n"
         "    Path(__file__).with_suffix('.STARTED').write_text('hook ran')\n")
PLANTED = ["hooks.py", "conftest.py", "pentora_hooks.py", "plugins.py", "scan.py", "__init__.py",
           "sitecustomize.py", "usercustomize.py", "evil.py"]
NOOP = "  - {instance_id: a, module_type: noop}\n"
DAGS = {  # case: (DAG text, what the refusal names; None for a valid DAG)
    "beside_python_files": ("nodes:\n" + NOOP, None),
    "top_level_hooks_field": ("hooks: evil.py\nnodes:\n" + NOOP, "unknown field 'hooks'"),
    "top_level_plugins_field": ("plugins: [evil.py]\nnodes:\n" + NOOP, "unknown field 'plugins'"),
    "module_type_names_a_file": ("nodes:\n  - {instance_id: a, module_type: evil.py}\n", "evil.py"),
    "module_type_names_an_object": ("nodes:\n  - {instance_id: a, module_type: 'evil:Module'}\n",
                                    "evil:Module"),
    "subdag_file_is_python": ("nodes:\n  - {instance_id: a, module_type: subdag, subdag_file: evil.py}\n",
                              "evil.py"),
    "retry_backoff_names_a_file": ("engine: {retry: {enabled: true, backoff: evil.py}}\nnodes:\n" + NOOP,
                                   "evil.py"),
    "node_hooks_field": ("nodes:\n  - {instance_id: a, module_type: noop, hooks: evil.py}\n",
                         "unknown field 'hooks'"),
}


def plant(directory: Path) -> None:
    for name in PLANTED:
        (directory / name).write_text(PLANT)


def marks(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix in (".RAN", ".STARTED"))


def pentora_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PENTORA), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", sorted(DAGS))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_dag_never_loads_python_files(case: str, command: str, tmp_path: Path) -> None:
    plant(tmp_path)
    text, refusal = DAGS[case]
    (tmp_path / "scan.yaml").write_text(text)
    out = pentora_cli(tmp_path, "dag", command, "scan.yaml")
    assert "Traceback" not in out.stdout + out.stderr
    if refusal is None:
        assert out.returncode == 0, out.stderr  # valid, and runs no code but its modules'
    else:
        assert out.returncode == 1 and refusal in out.stderr, out.stderr
    assert marks(tmp_path) == []


def test_only_hooks_names_a_file_that_loads(tmp_path: Path) -> None:
    """The control: the same planted file runs when, and only when, it is named."""
    plant(tmp_path)
    (tmp_path / "scan.yaml").write_text(DAGS["beside_python_files"][0])
    out = pentora_cli(tmp_path, "dag", "run", "scan.yaml", "--hooks", "evil.py")
    assert out.returncode == 0, out.stderr
    assert marks(tmp_path) == ["evil.RAN", "evil.STARTED"]


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch PWNED']",
                                 "!!python/name:os.system", "!!python/module:os"])
def test_a_sub_dag_file_is_read_as_safely_as_the_main_one(tag: str, tmp_path: Path) -> None:
    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "inner.yaml").write_text(f"nodes:\n  - instance_id: a\n    module_type: noop\n"
                                       f"    config: {tag}\n")
    main = tmp_path / "main.yaml"
    main.write_text("nodes:\n  - {instance_id: s, module_type: subdag, subdag_file: stages/inner.yaml}\n")
    with pytest.raises(DagParseError) as info:
        pentora.load_dag(main)
    message = str(info.value)
    assert "is not allowed" in message and str((stages / "inner.yaml").resolve()) in message
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
