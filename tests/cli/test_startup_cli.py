"""What answers before the engine is imported (``--version``, shell completion), and
``pentora profiles``."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
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
NEVER_AT_START = ("scapy", "cryptography", "paramiko", "celery", "jinja2", "flask", "werkzeug")


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


# -- help, version and TAB: no engine, no library of a scan ----------------------------------

# What no help, no --version and no TAB imports: gevent (and so no patching), loguru and the
# asyncio it brings, rich, voluptuous, the libraries of module types, and the engine (the
# API, the registry, the orchestrator).
NOT_FOR_HELP = ("gevent", "loguru", "asyncio", "rich", "voluptuous", *NEVER_AT_START)
ENGINE = ("pentora._api", "pentora.cli._api", "pentora._registry", "pentora._orchestrator",
          "pentora._execute", "pentora._parse")


def _heavy(imported: set[str], engine: tuple[str, ...] = ENGINE) -> list[str]:
    return sorted(m for m in imported if m.split(".")[0] in NOT_FOR_HELP or m in engine)


@pytest.mark.parametrize("args", [
    ["--help"], ["scan", "--help"], ["--version"], ["modules", "--help"], ["scans", "--help"],
    ["report", "--help"], ["worker", "--help"], ["demo", "--help"], ["dag", "run", "--help"],
    ["dag", "validate", "--help"], ["plugins", "new", "--help"], ["profiles", "--help"],
    ["catalog", "update", "--help"], ["scans", "show", "--help"], ["completion", "bash"],
], ids=" ".join)
def test_help_imports_no_engine_and_no_library_of_a_scan(args: list[str]) -> None:
    imported = _imports_of(*args)
    assert not _heavy(imported), f"pentora {' '.join(args)} imported {_heavy(imported)}"
    types = _module_type_modules() & imported
    assert not types, f"pentora {' '.join(args)} imported module types' code: {sorted(types)}"


def _completion_imports(line: str, tmp_path: Path) -> tuple[list[str], set[str]]:
    """What TAB offers after ``line``, and every module that run imported (Python's own
    import timing, written on the process's stderr below whatever argcomplete does)."""
    answer = tmp_path / "candidates"
    env = {k: v for k, v in os.environ.items() if not k.startswith("_ARC")}
    env.update({"_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": "bash", "COMP_LINE": line,
                "COMP_POINT": str(len(line)), "_ARGCOMPLETE_IFS": "\n",
                "_ARGCOMPLETE_STDOUT_FILENAME": str(answer), "PYTHONPROFILEIMPORTTIME": "1"})
    proc = subprocess.run([str(BIN / "pentora")], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {row.rpartition("|")[2].strip() for row in proc.stderr.splitlines()
                if row.startswith("import time:") and "|" in row}
    assert "argparse" in imported  # the timing reached us
    return [c.strip() for c in answer.read_text().split("\n") if c.strip()], imported


@pytest.mark.parametrize("line", ["pentora ", "pentora sc", "pentora scan --pro",
                                  "pentora scan --profile st", "pentora scans "])
def test_tab_imports_no_engine_and_no_library_of_a_scan(line: str, tmp_path: Path) -> None:
    offered, imported = _completion_imports(line, tmp_path)
    assert offered, f"nothing offered after {line!r}"
    assert not _heavy(imported), f"TAB after {line!r} imported {_heavy(imported)}"


@pytest.mark.parametrize("line", ["pentora modules show tcp_", "pentora scan --format "])
def test_tab_of_a_registered_name_imports_the_registry_only(line: str, tmp_path: Path) -> None:
    # Module types and formats are registered names: the registry is built, and neither a
    # module type's code nor the engine's is imported.
    offered, imported = _completion_imports(line, tmp_path)
    assert offered
    engine = tuple(m for m in ENGINE if m not in ("pentora._registry", "pentora._parse"))
    heavy = [m for m in _heavy(imported, engine) if m.split(".")[0] != "voluptuous"]
    assert not heavy, f"TAB after {line!r} imported {heavy}"
    assert not _module_type_modules() & imported


def test_help_lists_every_plugin_command_and_option(run_cli) -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("    ")}
    # The core's commands and every area's (store, output, engine, distributed, cve).
    assert {"scan", "dag", "modules", "plugins", "scans", "report", "demo", "worker",
            "catalog"} <= listed, listed
    proc = run_cli("scan", "--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--store", "--no-store", "--resume", "--shard", "--executor", "--ssh-user",
                   "--open", "--reason", "--fail-on", "--progress", "-T"):
        assert option in proc.stdout, f"scan --help does not list {option}"


# -- which commands make the standard library cooperative -----------------------------------

def _patched_after(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``pentora ARGS`` in a fresh interpreter: whether gevent had patched ``socket``
    by the time it returned ("patched"), was imported without patching ("unpatched") or
    not imported at all ("no gevent")."""
    code = (f"import sys\nfrom pentora.cli import main\nrc = main({list(args)!r})\n"
            "m = sys.modules.get('gevent.monkey')\n"
            "print('state:' + ('no gevent' if 'gevent' not in sys.modules else "
            "'patched' if m and m.is_module_patched('socket') else 'unpatched'), rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-2000:]
    state, _, rc = proc.stdout.strip().splitlines()[-1].removeprefix("state:").rpartition(" ")
    assert rc == "0", proc.stdout + proc.stderr
    return state


def test_a_command_that_runs_a_scan_is_cooperative(tmp_path: Path) -> None:
    dag = tmp_path / "only_noop.yaml"
    dag.write_text("name: only_noop\nnodes:\n  - instance_id: a\n    module_type: noop\n")
    assert _patched_after("dag", "run", str(dag), "--format", "json") == "patched"


@pytest.mark.parametrize("args", [["modules", "list"], ["profiles"], ["plugins", "list"]],
                         ids=" ".join)
def test_a_command_that_runs_no_scan_is_not_patched(args: list[str]) -> None:
    # `modules list` imports every module type (gevent with them): imported, not patched.
    assert _patched_after(*args) in ("no gevent", "unpatched")


def test_scans_list_is_not_patched(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    sqlite3.connect(store).close()  # an empty file: the store is created by its first use
    assert _patched_after("scans", "list", "--store", str(store)) in ("no gevent", "unpatched")


PLUGIN_COMMANDS = '''\
import pentora


def _state(args):
    import sys
    m = sys.modules.get("gevent.monkey")
    print("command:" + ("patched" if m and m.is_module_patched("socket") else "plain"))
    return 0


@pentora.hookimpl
def pentora_cli_commands(subparsers, common):
    subparsers.add_parser("says-nothing", parents=[common]).set_defaults(func=_state)
    subparsers.add_parser("no-scan", parents=[common]).set_defaults(func=_state, cooperative=False)
    subparsers.choices["scan"].add_argument("--hello-name", help="whom the plugin greets")
'''


def test_an_installed_plugins_commands_and_options_work_unchanged(run_cli, tmp_path: Path) -> None:
    from tests.cli.test_errors_cli import fake_installed

    fake_installed(tmp_path, "cmds", PLUGIN_COMMANDS)
    env = {"PYTHONPATH": str(tmp_path), "PENTORA_DISABLE_PLUGIN_AUTOLOAD": ""}
    proc = run_cli("scan", "--help", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "--hello-name" in proc.stdout and "whom the plugin greets" in proc.stdout
    # A command that says nothing is made cooperative, as every command was before.
    proc = run_cli("says-nothing", env=env)
    assert (proc.returncode, proc.stdout) == (0, "command:patched\n"), proc.stderr
    proc = run_cli("no-scan", env=env)
    assert (proc.returncode, proc.stdout) == (0, "command:plain\n"), proc.stderr
    proc = run_cli("plugins", "list", env=env)
    row = next(line.split() for line in proc.stdout.splitlines() if line.startswith("cmds "))
    assert row[:4] == ["cmds", "ok", "pentora-cmds", "0.1"]


# -- loguru: imported when a line at the chosen level is logged ------------------------------

def test_a_scan_imports_loguru_before_the_standard_library_is_made_cooperative(tmp_path: Path) -> None:
    # Native threads log (the event-loop watchdog, the store's writer): loguru's locks
    # must be the OS's, so a scanning command imports it before gevent patches threading.
    dag = tmp_path / "only_noop.yaml"
    dag.write_text("name: only_noop\nnodes:\n  - instance_id: a\n    module_type: noop\n")
    code = (f"from pentora.cli import main\nassert main(['dag', 'run', {str(dag)!r}]) == 0\n"
            "from loguru import logger\n"
            "print(type(logger._core.lock).__module__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "_thread", proc.stdout


LOGGING_HOOKS = '''\
import pentora
from pentora import logger


@pentora.hookimpl
def pentora_scan_start(scan):
    logger.bind(component="hooks").info("an info line")
    logger.bind(component="hooks").warning("a warning line")
    from loguru import logger as direct  # a plugin that uses loguru itself

    direct.debug("a direct debug line")
    direct.warning("a direct warning line")
'''


@pytest.mark.parametrize("level", ["WARNING", "DEBUG"])
def test_logs_are_configured_whoever_imports_loguru(run_cli, tmp_path: Path, level: str) -> None:
    dag = tmp_path / "only_noop.yaml"
    dag.write_text("name: only_noop\nnodes:\n  - instance_id: a\n    module_type: noop\n")
    hooks = tmp_path / "logs.py"
    hooks.write_text(LOGGING_HOOKS)
    proc = run_cli("dag", "run", str(dag), "--hooks", str(hooks), "--log-level", level,
                   "--log-format", "json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    said = {line["message"]: line["level"] for line in lines}
    assert said["a warning line"] == said["a direct warning line"] == "warning"
    shown = level == "DEBUG"
    assert ("an info line" in said) == shown and ("a direct debug line" in said) == shown, said
    assert {line["component"] for line in lines if line["message"] == "a warning line"} == {"hooks"}


def test_a_bad_log_file_is_still_a_usage_error(run_cli, tmp_path: Path) -> None:
    proc = run_cli("profiles", "--log-file", str(tmp_path / "no" / "such" / "dir" / "log"))
    assert proc.returncode == 2
    assert "cannot open log file" in proc.stderr and "Traceback" not in proc.stderr
