"""What answers before the engine is imported (``--version``, shell completion), and
``pentora profiles``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


# -- shell completion -----------------------------------------------------------------------

BIN = Path(sys.executable).parent


def complete(line: str, tmp_path: Path, shell: str = "bash") -> list[str]:
    """What TAB offers after ``line``: ``pentora`` run as the shell script runs it
    (argcomplete's variables, the answer in a file), the candidates one a line."""
    answer = tmp_path / "candidates"
    env = {k: v for k, v in os.environ.items() if not k.startswith("_ARC")}
    env.update({"_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": shell, "COMP_LINE": line,
                "COMP_POINT": str(len(line)), "_ARGCOMPLETE_IFS": "\n",
                "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)})
    proc = subprocess.run([str(BIN / "pentora")], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", "completion must write nothing but its answer"
    return [c.strip() for c in answer.read_text().split("\n") if c.strip()]


def test_completes_commands_core_and_plugin(tmp_path: Path) -> None:
    offered = complete("pentora ", tmp_path)
    assert {"scan", "dag", "modules", "profiles", "completion"} <= set(offered)
    assert {"report", "scans", "worker"} <= set(offered)  # added by plugins
    assert complete("pentora sc", tmp_path) == ["scan", "scans"]


def test_completes_options_including_plugin_added_ones(tmp_path: Path) -> None:
    assert complete("pentora scan --pro", tmp_path) == ["--profile", "--progress"]
    assert complete("pentora scan --sto", tmp_path) == ["--store"]  # the store plugin's
    # -p no:NAME on the line is honoured: the plugin's options are gone.
    assert complete("pentora scan -p no:store --sto", tmp_path) == []


def test_completes_profile_names(tmp_path: Path) -> None:
    assert complete("pentora scan --profile ", tmp_path) == sorted(p.stem for p in DAGS.glob("*.yaml"))
    assert complete("pentora scan --profile st", tmp_path) == ["standard"]


def test_completes_module_types(tmp_path: Path) -> None:
    offered = complete("pentora modules show ", tmp_path)
    assert {"tcp_probe_discovery", "discovery_merger", "cve_matcher", "noop"} <= set(offered)
    assert complete("pentora modules show tcp_", tmp_path) == ["tcp_probe_discovery"]


def test_completes_output_formats(tmp_path: Path) -> None:
    assert {"jsonl", "html", "csv", "xml", "md"} <= set(complete("pentora scan --format ", tmp_path))
    assert {"jsonl", "html"} <= set(complete("pentora report x.jsonl --format ", tmp_path))
    assert complete("pentora modules list --format ", tmp_path) == ["text", "json"]


def test_zsh_completions_carry_the_help_text(tmp_path: Path) -> None:
    # zsh's protocol: NAME:DESCRIPTION, shown beside each candidate.
    offered = complete("pentora scan --pro", tmp_path, shell="zsh")
    assert offered == ["--profile:built-in profile (see `pentora profiles`)",
                       "--progress:show progress on stderr"]
    offered = complete("pentora scan --profile st", tmp_path, shell="zsh")
    assert [c.partition(":")[0].strip() for c in offered] == ["standard"]


def test_completion_of_an_open_quote_still_answers(tmp_path: Path) -> None:
    assert complete("pentora scan --set 'a=b", tmp_path) == []


def test_completion_script_answers_without_the_engine() -> None:
    code = ("import io, contextlib\nfrom pentora.cli import main\nbuf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n    assert main(['completion', 'bash']) == 0\n"
            "assert 'complete ' in buf.getvalue()")
    assert _imported_after(code) == set()


def test_completion_of_an_unknown_shell_is_a_usage_error(run_cli) -> None:
    proc = run_cli("completion", "fish")
    assert proc.returncode == 2
    assert "invalid choice: 'fish'" in proc.stderr and "bash" in proc.stderr


def _shell_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("_ARC")} | {
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def test_bash_registers_and_completes(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed: the bash script is not sourced")
    script = ('eval "$(pentora completion bash)"\ncomplete -p pentora\n'
              'COMP_LINE="pentora scan --profile st"; COMP_POINT=${#COMP_LINE}\n'
              "COMP_WORDS=(pentora scan --profile st); COMP_CWORD=3\n"
              '_python_argcomplete pentora st --profile\nprintf "reply:%s\\n" "${COMPREPLY[@]}"\n')
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                          text=True, env=_shell_env(), cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "-F _python_argcomplete pentora" in proc.stdout
    assert [line for line in proc.stdout.splitlines() if line.startswith("reply:")] == [
        "reply:standard "]


def test_zsh_registers_the_completion(tmp_path: Path) -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (apt-get install zsh): the zsh script is not sourced")
    script = ('autoload -Uz compinit && compinit -u -d "$PWD/zcompdump"\n'
              'eval "$(pentora completion zsh)"\nprint -r -- "registered:${_comps[pentora]}"\n')
    proc = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True,
                          env=_shell_env(), cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "registered:_python_argcomplete" in proc.stdout


# -- what the start-up path imports ----------------------------------------------------------

# Imported by the module types and checks that use them, never to start or to print help.
NEVER_AT_START = ("scapy", "cryptography", "paramiko", "celery", "jinja2")


def _imports_of(*args: str) -> set[str]:
    """Every module ``pentora ARGS`` imports (``-X importtime`` lists them on stderr)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "pentora", *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rpartition("|")[2].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _module_type_modules() -> set[str]:
    """The modules the installed plugins' module types live in, as registered (by name:
    reading them imports none), but for those that also hold a part of a plugin (an object
    with hooks, registered when the plugin loads, as ``output.json_reporter``'s streams)."""
    pm = pentora.get_plugin_manager()
    parts = {getattr(p, "__name__", None) or type(p).__module__ for _, p in pm.list_name_plugin()}
    return {m.target.partition(":")[0] for m in pm.registry.modules.values()} - parts


@pytest.mark.parametrize("args", [["--help"], ["scan", "--help"], ["--version"], ["modules", "--help"]])
def test_start_up_imports_no_module_type_and_no_heavy_library(args: list[str]) -> None:
    imported = _imports_of(*args)
    assert "argparse" in imported or args == ["--version"]  # the listing itself works
    heavy = {m for m in imported if m.split(".")[0] in NEVER_AT_START}
    assert not heavy, f"pentora {' '.join(args)} imported {sorted(heavy)}"
    types = _module_type_modules() & imported
    assert not types, f"pentora {' '.join(args)} imported module types' code: {sorted(types)}"


def test_version_imports_no_engine_nor_plugin() -> None:
    imported = _imports_of("--version")
    assert not {"gevent", "loguru", "pluggy", "pentora._orchestrator"} & imported
    assert not {m for m in imported if m.startswith("pentora_plugins")}


def test_a_scan_imports_the_module_types_it_uses_only(tmp_path: Path) -> None:
    dag = tmp_path / "only_noop.yaml"
    dag.write_text("name: only_noop\nnodes:\n  - instance_id: a\n    module_type: noop\n")
    code = (f"from pentora.cli import main\nimport sys\nassert main(['dag', 'run', {str(dag)!r}]) == 0\n"
            "print('loaded:' + ','.join(sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = set(proc.stdout.strip().splitlines()[-1].removeprefix("loaded:").split(","))
    assert "pentora_plugins.engine.modules" in imported
    unused = (_module_type_modules() - {"pentora_plugins.engine.modules"}) & imported
    assert not unused, f"a DAG of one noop imported {sorted(unused)}"


def test_a_module_type_that_fails_to_import_names_its_plugin(run_cli, tmp_path: Path) -> None:
    hooks = tmp_path / "ghost.py"
    hooks.write_text("import pentora\n\n\n@pentora.hookimpl\ndef pentora_register_modules(registry):\n"
                     "    registry.register('no_such_package_here.scanner:Ghost', name='ghost')\n")
    dag = tmp_path / "ghost.yaml"
    dag.write_text("name: g\nnodes:\n  - instance_id: a\n    module_type: ghost\n")
    proc = run_cli("dag", "run", str(dag), "--hooks", str(hooks))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"module type 'ghost' of plugin 'hooks:{hooks}'" in proc.stderr
    assert "ModuleNotFoundError: No module named 'no_such_package_here'" in proc.stderr
    # Listed without it, by name, until it is used.
    proc = run_cli("modules", "show", "noop", "--hooks", str(hooks))
    assert proc.returncode == 0, proc.stderr
