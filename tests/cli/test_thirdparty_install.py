"""Third-party plugins installed the way users install them: with pip, found through the
``pentora`` entry-point group, with no repository on ``sys.path``.

The venv tests build one fresh virtual environment for the whole module and install
pentora (not editable), ``examples/pentora-hello-plugin`` and ``pentora-broken-plugin`` into it.
The ``--target`` tests are the quick variant: the hello plugin on ``PYTHONPATH`` next to
the development install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import pentora

ROOT = Path(__file__).resolve().parents[2]
THIRDPARTY = ROOT / "tests" / "thirdparty"
HELLO = ROOT / "examples" / "pentora-hello-plugin"
BROKEN = THIRDPARTY / "pentora-broken-plugin"
BUILTIN_TYPES = {"noop", "sleep", "set"}
PIP_TIMEOUT = 240

# pip builds a local project in place, writing build/ and *.egg-info into the working
# tree (where a stale build/lib can even leak removed files into the wheel): build from
# a clean copy instead.
_LITTER = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests")

HELLO_DAG = """\
name: greet
nodes:
  - instance_id: greet
    module_type: hello_world
    config: {name: tester, repeat: 2}
  - instance_id: done
    module_type: noop
    depends_on: [greet]
"""


def clean_copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=_LITTER)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would change what pentora loads."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PENTORA_", "PYTHON")) and k != "VIRTUAL_ENV"}
    env.update(extra)
    return env


def pip(*args: str) -> None:
    """Run pip (its cache is reused); fail the test with pip's output if it fails."""
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          env=clean_env(), timeout=PIP_TIMEOUT)
    assert proc.returncode == 0, f"pip {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


def types_listed(stdout: str) -> set[str]:
    """Module types in ``pentora modules list --format json``."""
    return {m["name"] for m in json.loads(stdout)}


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


# -- a fresh virtual environment -----------------------------------------------------------


@dataclass
class Venv:
    root: Path
    python: Path
    pentora: Path
    workdir: Path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The venv's ``pentora`` console script, run outside the repository."""
        return subprocess.run([str(self.pentora), *args], capture_output=True, text=True,
                              env=clean_env(**env), cwd=self.workdir, timeout=60)

    def py(self, code: str) -> str:
        proc = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                              env=clean_env(), cwd=self.workdir, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    base = tmp_path_factory.mktemp("thirdparty")
    root = base / "venv"
    # Without pip in the venv: the outer pip installs into it (--python), which skips
    # bootstrapping a second pip and shares one cache.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)
    src = base / "src"
    pip("--python", str(root / "bin" / "python"), "install", "--quiet",
        str(clean_copy(ROOT, src / "pentora")), str(clean_copy(HELLO, src / "hello")),
        str(clean_copy(BROKEN, src / "broken")))
    workdir = base / "work"
    workdir.mkdir()
    yield Venv(root, root / "bin" / "python", root / "bin" / "pentora", workdir)
    shutil.rmtree(root, ignore_errors=True)  # ~100MB; pytest keeps the last runs' tmp dirs


@pytest.mark.slow
def test_venv_imports_the_installed_packages_not_the_working_tree(venv: Venv) -> None:
    paths = json.loads(venv.py(
        "import json, pentora, pentora_plugins, pentora_dags, pentora_hello;"
        "print(json.dumps([m.__file__ for m in (pentora, pentora_plugins, pentora_dags, pentora_hello)]))"))
    for path in paths:
        assert Path(path).is_relative_to(venv.root), path
    assert venv.py("import pentora; print(pentora.__version__)") == pentora.__version__


@pytest.mark.slow
def test_modules_list_shows_builtins_and_thirdparty_type(venv: Venv) -> None:
    proc = venv.run("modules", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[1:] if line.strip()}
    assert {t: rows.get(t) for t in BUILTIN_TYPES} == dict.fromkeys(BUILTIN_TYPES, "engine")
    assert rows.get("hello_world") == "hello"
    assert_no_traceback(proc)


@pytest.mark.slow
def test_plugins_list_shows_hello_with_its_version(venv: Venv) -> None:
    proc = venv.run("plugins", "list")
    assert proc.returncode == 0, proc.stderr
    hello = [line.split(None, 4) for line in proc.stdout.splitlines() if line.startswith("hello ")]
    assert hello == [["hello", "ok", "pentora-hello-plugin", "0.3.0",
                      "node_complete, register_modules"]]

    data = json.loads(venv.run("plugins", "list", "--format", "json").stdout)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["hello"] == {"name": "hello", "distribution": "pentora-hello-plugin",
                                "version": "0.3.0",
                                "hooks": ["pentora_node_complete", "pentora_register_modules"],
                                "status": "ok"}
    assert (by_name["engine"]["distribution"], by_name["engine"]["version"]) == (
        "pentora", pentora.__version__)


@pytest.mark.slow
def test_modules_show_hello_world_describes_every_config_key(venv: Venv) -> None:
    proc = venv.run("modules", "show", "hello_world")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("hello_world — Writes a greeting into the DataContext.")
    assert "provider:   hello" in proc.stdout
    assert "produces:   greeting" in proc.stdout
    rows = {line.split()[0]: line for line in proc.stdout.split("config:", 1)[1].splitlines()[2:]}
    assert set(rows) == {"name", "punctuation", "repeat"}
    for key, (type_, default, description) in {
        "name": ("str", '"world"', "who to greet"),
        "punctuation": ("one of '!', '.', '?'", '"!"', "ends the greeting"),
        "repeat": ("int", "1", "how many times to say it"),
    }.items():
        assert rows[key].split() == [key, *type_.split(), default, *description.split()]

    shown = json.loads(venv.run("modules", "show", "hello_world", "--format", "json").stdout)
    assert shown["produces"] == ["greeting"]
    assert [(k["key"], k["type"], k["default"], k["required"], k["description"])
            for k in shown["config"]] == [
        ("name", "str", "world", False, "who to greet"),
        ("punctuation", "one of '!', '.', '?'", "!", False, "ends the greeting"),
        ("repeat", "int", 1, False, "how many times to say it"),
    ]


@pytest.mark.slow
def test_dag_run_with_hello_world_runs_module_and_hook(venv: Venv) -> None:
    dag = venv.workdir / "greet.yaml"
    dag.write_text(HELLO_DAG)
    proc = venv.run("dag", "run", str(dag), "--log-format", "json", "--log-level", "INFO")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statuses = {line.split()[0]: line.split()[2] for line in proc.stdout.splitlines()[1:3]}
    assert statuses == {"greet": "completed", "done": "completed"}
    logs = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    greetings = [r for r in logs if r.get("component") == "hello"]
    assert [(r["node"], r["message"]) for r in greetings] == [
        ("greet", "greeting: Hello, tester! Hello, tester!")]


@pytest.mark.slow
def test_dag_validate_checks_thirdparty_config_schema(venv: Venv) -> None:
    dag = venv.workdir / "bad_greet.yaml"
    dag.write_text(HELLO_DAG.replace("repeat: 2", "repeat: 0, punctuation: '~'"))
    proc = venv.run("dag", "validate", str(dag), "--format", "json")
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["problems"]
    assert sorted((p["node"], p["key"]) for p in problems) == [
        ("greet", "config.punctuation"), ("greet", "config.repeat")]
    assert_no_traceback(proc)


@pytest.mark.slow
def test_shipped_example_dag_plans_from_the_installed_package(venv: Venv) -> None:
    example = Path(venv.py("import importlib.resources as r;"
                           "print(r.files('pentora_dags') / 'examples' / 'hello.yaml')"))
    assert example.is_file() and example.is_relative_to(venv.root), example
    proc = venv.run("dag", "plan", str(example), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["layers"] == [["seed"], ["stage_a", "stage_b", "slow_stage"], ["join"]]
    assert plan["order"] == ["seed", "stage_a", "stage_b", "slow_stage", "join"]


@pytest.mark.slow
def test_plugins_new_writes_from_the_installed_templates(venv: Venv) -> None:
    # The templates are package data: a wheel without them would fail here, not in the
    # development install.
    proc = venv.run("plugins", "new", "greet_check", "--dir", "greet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = {p.relative_to(venv.workdir / "greet").as_posix()
               for p in (venv.workdir / "greet").rglob("*") if p.is_file()}
    assert written == {"pyproject.toml", "README.md", "pentora_greet_check/__init__.py",
                       "tests/test_greet_check.py"}


@pytest.mark.slow
def test_broken_plugin_is_reported_and_skipped(venv: Venv) -> None:
    proc = venv.run("plugins", "list")
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    row = next(line for line in proc.stdout.splitlines() if line.startswith("broken "))
    assert row.split(None, 4) == ["broken", "broken", "pentora-broken-plugin", "0.0.1",
                                  "ImportError: pentora-broken-plugin needs libpentora-broken.so, "
                                  "which is not installed"]
    assert "plugin 'broken' (pentora_broken) failed to load and was skipped" in proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()[1:]]
    assert "hello" in names and "engine" in names

    data = json.loads(venv.run("plugins", "list", "--format", "json").stdout)
    broken = {b["name"]: b["error"] for b in data["broken"]}
    assert broken.get("broken", "").startswith("ImportError: ")
    assert "broken" not in {p["name"] for p in data["plugins"]}


@pytest.mark.slow
def test_broken_plugin_does_not_break_other_commands(venv: Venv) -> None:
    proc = venv.run("modules", "list", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert BUILTIN_TYPES | {"hello_world"} <= types_listed(proc.stdout)
    assert_no_traceback(proc)
    dag = venv.workdir / "greet.yaml"
    dag.write_text(HELLO_DAG)
    proc = venv.run("dag", "run", str(dag))
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)


@pytest.mark.slow
def test_disabling_the_broken_plugin_silences_it(venv: Venv) -> None:
    proc = venv.run("plugins", "list", "-p", "no:broken")
    assert proc.returncode == 0
    assert "'broken'" not in proc.stderr
    assert "BROKEN  broken:" not in proc.stdout


# -- the quick variant: pip install --target, found through PYTHONPATH --------------------


@pytest.fixture(scope="module")
def hello_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hello_target")
    target = base / "site"
    pip("install", "--quiet", "--no-deps", "--target", str(target),
        str(clean_copy(HELLO, base / "src")))
    return target


def modules_and_plugins(run_cli, *args: str, **env: str) -> tuple[set[str], set[str]]:
    mods = run_cli("modules", "list", "--format", "json", *args, env=env)
    assert mods.returncode == 0, mods.stderr
    plugs = run_cli("plugins", "list", "--format", "json", *args, env=env)
    assert plugs.returncode == 0, plugs.stderr
    return types_listed(mods.stdout), {p["name"] for p in json.loads(plugs.stdout)["plugins"]}


def test_target_install_is_found_on_pythonpath(run_cli, hello_target: Path) -> None:
    types, plugins = modules_and_plugins(run_cli, PYTHONPATH=str(hello_target),
                                         PENTORA_DISABLE_PLUGIN_AUTOLOAD="")
    assert BUILTIN_TYPES | {"hello_world"} <= types
    assert {"hello", "engine"} <= plugins


def test_without_the_target_on_pythonpath_hello_is_absent(run_cli) -> None:
    types, plugins = modules_and_plugins(run_cli, PENTORA_DISABLE_PLUGIN_AUTOLOAD="")
    assert BUILTIN_TYPES <= types and "hello_world" not in types
    assert "hello" not in plugins


def test_disable_autoload_drops_hello_and_builtins(run_cli, hello_target: Path) -> None:
    types, plugins = modules_and_plugins(run_cli, PYTHONPATH=str(hello_target),
                                         PENTORA_DISABLE_PLUGIN_AUTOLOAD="1")
    assert types == set()
    assert plugins == set()


def test_p_no_hello_drops_only_hello(run_cli, hello_target: Path) -> None:
    types, plugins = modules_and_plugins(run_cli, "-p", "no:hello", PYTHONPATH=str(hello_target),
                                         PENTORA_DISABLE_PLUGIN_AUTOLOAD="")
    assert "hello_world" not in types and BUILTIN_TYPES <= types
    assert "hello" not in plugins and {"engine", "engine.logging", "engine.progress"} <= plugins


# -- a faked .dist-info: an installed plugin that implements a hook pentora lacks --------------


@pytest.fixture
def typo_plugin_dir(tmp_path: Path) -> Path:
    """``pentora-typo`` 0.1, entry point ``typo``, with a misspelt hook name."""
    (tmp_path / "pentora_typo").mkdir()
    (tmp_path / "pentora_typo" / "__init__.py").write_text(
        "import pentora\n\n\n@pentora.hookimpl\ndef pentora_node_completed(node):\n    pass\n")
    info = tmp_path / "pentora_typo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pentora-typo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pentora]\ntypo = pentora_typo\n")
    return tmp_path


def test_disabling_a_plugin_with_an_unknown_hook_works(run_cli, typo_plugin_dir: Path) -> None:
    types, plugins = modules_and_plugins(run_cli, "-p", "no:typo", PYTHONPATH=str(typo_plugin_dir),
                                         PENTORA_DISABLE_PLUGIN_AUTOLOAD="")
    assert BUILTIN_TYPES <= types and "typo" not in plugins


def test_installed_plugin_with_unknown_hook_is_reported_and_skipped(
        run_cli, typo_plugin_dir: Path) -> None:
    env = {"PYTHONPATH": str(typo_plugin_dir), "PENTORA_DISABLE_PLUGIN_AUTOLOAD": ""}
    proc = run_cli("plugins", "list", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    broken = {b["name"]: b["error"] for b in json.loads(proc.stdout)["broken"]}
    assert "pentora_node_completed" in broken.get("typo", "")
    assert run_cli("modules", "list", env=env).returncode == 0
