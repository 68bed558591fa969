"""What the command line says about what the user typed: an unknown flag, a bad option
value, a plugin name that does not exist. One message naming the option, the subcommand's
own usage, a did-you-mean, and the documented exit code; never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_no_traceback

ROOT = Path(__file__).resolve().parents[2]

# Runs in a child (importing pentora.cli._main monkey-patches the interpreter): every leaf
# command of the parser, plugin-added ones included, given an unknown flag.
_UNKNOWN_FLAG_EVERYWHERE = """\
import argparse, contextlib, io, json
from pentora._plugins import get_plugin_manager
from pentora.cli._main import build_parser

def leaves(parser, words, out):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        out.append((words, parser.prog))
    for action in subs:
        for name, child in action.choices.items():
            leaves(child, [*words, name], out)
    return out

answers = {}
for words, prog in leaves(build_parser(get_plugin_manager()), [], []):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            build_parser(get_plugin_manager()).parse_args([*words, "--no-such-flag"])
            code = 0
        except SystemExit as e:
            code = e.code
    answers[" ".join(words)] = [prog, code, err.getvalue()]
print(json.dumps(answers))
"""


def test_unknown_flag_shows_the_usage_of_the_command_typed() -> None:
    """argparse hands a subcommand's unknown arguments to the top parser, whose usage
    (``pentora [-h] COMMAND``) says nothing about the command that was typed."""
    proc = subprocess.run([sys.executable, "-c", _UNKNOWN_FLAG_EVERYWHERE], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout)
    # Core, nested, and plugin-added commands are all walked.
    assert {"scan", "dag validate", "plugins list", "scans list"} <= set(answers), sorted(answers)
    for words, (prog, code, err) in answers.items():
        assert code == 2, (words, err)
        assert err.startswith(f"usage: {prog} "), (words, err)
        # A command missing its positional argument says so first, in its own usage too.
        assert "--no-such-flag" in err or "arguments are required" in err, (words, err)


def test_unknown_flag_after_scan_options(run_cli) -> None:
    proc = run_cli("scan", "-t", "127.0.0.1", "--bogus")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: pentora scan ")
    assert "pentora scan: error: unrecognized arguments: --bogus" in proc.stderr
    assert proc.stdout == ""
    assert_no_traceback(proc)


HELLO = str(ROOT / "dags" / "examples" / "hello.yaml")


@pytest.mark.parametrize("command", [
    pytest.param(["scan", "-t", "127.0.0.1", "--profile", "port-scan", "--no-store"], id="scan"),
    pytest.param(["dag", "run", HELLO], id="dag-run"),
    pytest.param(["dag", "validate", HELLO], id="dag-validate"),
    pytest.param(["dag", "plan", HELLO], id="dag-plan"),
])
def test_set_of_a_var_the_dag_does_not_use_is_a_usage_error(run_cli, command: list[str]) -> None:
    """docs/cli.md: exit 2, naming the var and the ones the DAG has; nothing runs."""
    proc = run_cli(*command, "--set", "slow_enabeld=true")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --set slow_enabeld: DAG '")
    assert "has no var named 'slow_enabeld' (its vars: " in proc.stderr
    assert proc.stdout == ""
    assert_no_traceback(proc)


def test_set_of_a_var_the_dag_uses_runs(run_cli) -> None:
    proc = run_cli("dag", "run", HELLO, "--set", "slow_enabled=false", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "completed"


# -- a bad option value is that option's error ---------------------------------------------


@pytest.mark.parametrize(("args", "said"), [
    pytest.param(["-t", "300.1.1.1"],
                 "error: -t 300.1.1.1: invalid target '300.1.1.1': Octet 300 (> 255) not permitted",
                 id="target"),
    pytest.param(["-t127.0.0.1,300.1.1.1"],
                 "error: -t 127.0.0.1,300.1.1.1: invalid target '300.1.1.1': Octet 300", id="glued"),
    pytest.param(["-t", "127.0.0.1", "-p", "1-65536"],
                 "error: -p 1-65536: port 65536 in '1-65536' is out of range (1-65535)", id="ports"),
    pytest.param(["-t", "127.0.0.1", "--ports=1-65536"],
                 "error: --ports 1-65536: port 65536", id="ports-equals"),
    pytest.param(["-t", "127.0.0.1", "--set", "rate=fast"],
                 "error: --set rate=fast: expected an integer, got 'fast'", id="set"),
])
def test_bad_option_value_is_one_message_naming_the_option(run_cli, args: list[str],
                                                           said: str) -> None:
    """Not the node of the profile that reads the var, nor the nodes downstream of it."""
    proc = run_cli("scan", *args, "--no-store")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(said), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    for noise in ("problem", "Node '", ".yaml", "upstream", "(got"):
        assert noise not in proc.stderr, proc.stderr
    assert proc.stdout == ""
    assert_no_traceback(proc)


def test_every_bad_option_value_is_named_at_once(run_cli) -> None:
    proc = run_cli("scan", "-t", "300.1.1.1", "-p", "0", "--set", "rate=fast", "--no-store")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == \
        ["-t 300.1.1.1", "-p 0", "--set rate=fast"], lines


OWN_DAG = """\
name: own
vars: {targets: 127.0.0.1}
nodes:
  - {instance_id: parse, module_type: target_parser, config: {targets: "${targets}"}}
  - {instance_id: nap, module_type: sleep, config: {duration: forever}}
"""


def test_bad_option_value_and_a_broken_dag_are_both_said(run_cli, tmp_path: Path) -> None:
    """The DAG's own problem is invalid input (exit 1), still named by file and node."""
    (tmp_path / "own.yaml").write_text(OWN_DAG)
    proc = run_cli("scan", "-t", "300.1.1.1", "--dag", str(tmp_path / "own.yaml"), "--no-store")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: -t 300.1.1.1: invalid target '300.1.1.1'")
    assert "error: 1 problem in DAG:" in proc.stderr
    assert "own.yaml:5: Node 'nap' (sleep): config.duration:" in proc.stderr
    assert_no_traceback(proc)


def test_dag_problem_in_a_var_no_option_set_stays_the_nodes(run_cli, tmp_path: Path) -> None:
    (tmp_path / "own.yaml").write_text(OWN_DAG.replace("127.0.0.1}", "300.1.1.1, other: 1}")
                                       .replace("duration: forever", "duration: 1ms"))
    proc = run_cli("dag", "validate", str(tmp_path / "own.yaml"))
    assert proc.returncode == 1, proc.stderr
    assert "Node 'parse' (target_parser): config.targets: invalid target '300.1.1.1'" in proc.stderr


# -- -p no:NAME of no plugin --------------------------------------------------------------


@pytest.mark.parametrize("command", [["scan", "-t", "127.0.0.1"], ["modules", "list"]])
def test_disabling_an_unknown_plugin_is_a_usage_error_with_the_nearest(run_cli, command) -> None:
    proc = run_cli(*command, "-p", "no:portscann")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("error: no plugin named 'portscann' to disable (did you mean "
                           "'portscan'?); `pentora plugins list` shows the plugins\n")


# -- installed plugins: faked .dist-info on PYTHONPATH -------------------------------------


def fake_installed(folder: Path, name: str, code: str, entry: str | None = None) -> Path:
    """``pentora-NAME`` 0.1, installed as far as importlib.metadata can tell: a package and
    a .dist-info with the entry point ``NAME = entry`` of group ``pentora``."""
    (folder / f"pentora_{name}").mkdir(parents=True)
    (folder / f"pentora_{name}" / "__init__.py").write_text(code)
    info = folder / f"pentora_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pentora-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[pentora]\n{name} = {entry or f'pentora_{name}'}\n")
    return folder


CLASHING = '''\
import pentora


class Noop(pentora.Module):
    """Another noop."""

    module_type = "noop"


@pentora.hookimpl
def pentora_register_modules(registry):
    registry.register(Noop)
'''


def test_two_installed_plugins_clashing_say_which_to_leave_out(run_cli, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(fake_installed(tmp_path, "clash", CLASHING)),
           "PENTORA_DISABLE_PLUGIN_AUTOLOAD": ""}
    proc = run_cli("modules", "list", env=env)
    assert proc.returncode == 1
    assert proc.stderr == ("error: module type 'noop' registered twice: by plugin 'engine' "
                           "(pentora_plugins.engine.modules.Noop) and by plugin 'clash' "
                           "(pentora_clash.Noop); leave one out with -p no:engine or -p no:clash\n")
    # The way out it names works.
    proc = run_cli("modules", "list", "--format", "json", "-p", "no:clash", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "noop" in {m["name"] for m in json.loads(proc.stdout)}


# -- broken plugins never break another command --------------------------------------------

BROKEN_PLUGINS = {
    # name: (code, entry point, what `plugins list` says)
    "noimport": ('raise ImportError("needs libnothing.so")\n', None,
                 "ImportError: needs libnothing.so"),
    "classy": ("import pentora\n\n\nclass Plugin:\n    @pentora.hookimpl\n"
               "    def pentora_register_modules(self, registry):\n        pass\n",
               "pentora_classy:Plugin",
               "the entry point names the class Plugin, whose hooks are methods: point it at an "
               "instance (plugin = Plugin()) instead"),
    "wrongsig": ("import pentora\n\n\n@pentora.hookimpl\n"
                 "def pentora_node_complete(node, record, when):\n    pass\n", None,
                 "PluginValidationError: Plugin 'wrongsig' for hook 'pentora_node_complete'; "
                 "hookimpl definition: pentora_node_complete(node, record, when); Argument(s) "
                 "{'when'} are declared in the hookimpl but can not be found in the hookspec"),
    "regboom": ("import pentora\n\n\n@pentora.hookimpl\ndef pentora_register_modules(registry):\n"
                "    raise RuntimeError('boom')\n", None,
                "in pentora_register_modules: RuntimeError: boom"),
    "notamodule": ("import pentora\n\n\n@pentora.hookimpl\n"
                   "def pentora_register_modules(registry):\n    registry.register(dict)\n", None,
                   "in pentora_register_modules: plugin 'notamodule' registered <class 'dict'>, "
                   "which is not a pentora.Module subclass"),
}


@pytest.fixture
def broken_env(tmp_path: Path) -> dict[str, str]:
    for name, (code, entry, _) in BROKEN_PLUGINS.items():
        fake_installed(tmp_path, name, code, entry)
    return {"PYTHONPATH": str(tmp_path), "PENTORA_DISABLE_PLUGIN_AUTOLOAD": ""}


def test_plugins_list_shows_each_broken_plugin_and_why(run_cli, broken_env) -> None:
    proc = run_cli("plugins", "list", env=broken_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split()[:2] == ["NAME", "STATUS"]
    rows = {line.split()[0]: line.split(None, 4) for line in proc.stdout.splitlines()[1:]}
    for name, (_, _, why) in BROKEN_PLUGINS.items():
        assert rows[name] == [name, "broken", f"pentora-{name}", "0.1", why], rows[name]
    assert rows["engine"][1] == "ok"

    proc = run_cli("plugins", "list", "--format", "json", env=broken_env)
    data = json.loads(proc.stdout)
    assert {b["name"]: (b["status"], b["distribution"], b["error"]) for b in data["broken"]} == \
        {name: ("broken", f"pentora-{name}", why) for name, (_, _, why) in BROKEN_PLUGINS.items()}
    assert {p["status"] for p in data["plugins"]} == {"ok"}
    assert not set(BROKEN_PLUGINS) & {p["name"] for p in data["plugins"]}


@pytest.mark.parametrize("command", [
    pytest.param(["modules", "list", "--format", "json"], id="modules-list"),
    pytest.param(["dag", "run", HELLO, "--format", "json"], id="dag-run"),
    pytest.param(["profiles"], id="profiles"),
])
def test_other_commands_work_and_warn_once_per_broken_plugin(run_cli, broken_env, command) -> None:
    proc = run_cli(*command, env=broken_env)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    for name in BROKEN_PLUGINS:
        said = [line for line in proc.stderr.splitlines() if f"plugin '{name}' " in line]
        assert len(said) == 1 and "WARNING" in said[0], proc.stderr
    if command[0] == "modules":
        assert {"noop", "sleep", "syn_scanner"} <= {m["name"] for m in json.loads(proc.stdout)}


def test_a_bad_line_of_a_target_file_is_invalid_input_named_by_the_option(run_cli,
                                                                         tmp_path: Path) -> None:
    """What is wrong is inside the file (exit 1, as for any file), said once, by the option."""
    (tmp_path / "hosts.txt").write_text("127.0.0.1\n300.1.1.1\n")
    proc = run_cli("scan", "-t", f"@{tmp_path / 'hosts.txt'}", "--profile", "port-scan", "--no-store")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"error: -t @{tmp_path / 'hosts.txt'}: "), proc.stderr
    assert proc.stderr.count("\n") == 1 and "upstream" not in proc.stderr, proc.stderr
