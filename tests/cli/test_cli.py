"""The ``pentora`` command line, run as users run it: in a subprocess.

Exit codes: 0 success, 1 invalid input, 2 usage error, 3 the run finished with failed
or cancelled nodes. Bad input never shows a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import pentora

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "dags" / "examples" / "hello.yaml")
EXAMPLE_NODES = ["seed", "stage_a", "stage_b", "slow_stage", "join"]
EXAMPLE_EDGES = [("seed", "stage_a"), ("seed", "stage_b"), ("seed", "slow_stage"),
                 ("stage_a", "join"), ("stage_b", "join")]

INVALID_DAG = """\
name: broken
nodes:
  - instance_id: a
    module_type: noop
    depends_on: [c]
  - instance_id: b
    module_type: sleeep
  - instance_id: c
    module_type: sleep
    depends_on: [a]
    config: {duration: forever, bogus: 1}
  - instance_id: d
    module_type: noop
    depends_on: [missing]
  - instance_id: d
    module_type: noop
"""
# Every problem of INVALID_DAG: (node, fragment of its message).
INVALID_PROBLEMS = [
    ("d", "Duplicate instance_id 'd'"),
    ("d", "Node 'd' depends on 'missing' which does not exist"),
    ("a", "Cycle detected in DAG: a → c → a"),
    ("b", "Node 'b': unknown module_type 'sleeep' (did you mean 'sleep'?)"),
    ("c", "Node 'c' (sleep): config.duration:"),
    ("c", "Node 'c' (sleep): config.bogus: unknown field 'bogus'"),
]

BOOM_HOOKS = """\
from pentora import Module, hookimpl


class Boom(Module):
    \"\"\"Always fails.\"\"\"

    module_type = "boom"

    def run(self, ctx, config):
        raise RuntimeError("kaboom from test")


@hookimpl
def pentora_register_modules(registry):
    registry.register(Boom)
"""

NEEDS_BANNERS_HOOKS = """\
from pentora import Module, hookimpl


class NeedsBanners(Module):
    \"\"\"Reads banners that nothing upstream produces.\"\"\"

    module_type = "needs_banners"
    requires = ("banners",)

    def run(self, ctx, config):
        return None


@hookimpl
def pentora_register_modules(registry):
    registry.register(NeedsBanners)
"""

FAILING_DAG = """\
name: failing
engine: {fail_fast: %s}
nodes:
  - {instance_id: ok, module_type: noop}
  - {instance_id: bad, module_type: boom, depends_on: [ok]}
  - {instance_id: after, module_type: noop, depends_on: [bad]}
  - {instance_id: other, module_type: sleep, depends_on: [ok], config: {duration: %s}}
"""

PRINT_HOOKS = """\
import pentora


@pentora.hookimpl
def pentora_node_complete(node, record):
    print(f"HOOK complete {node.instance_id} {record.status}", flush=True)
"""

RAISING_HOOKS = """\
import pentora


@pentora.hookimpl
def pentora_node_complete(node):
    raise ValueError(f"hook exploded on {node.instance_id}")
"""

LONG_DAG = """\
name: long
nodes:
  - {instance_id: first, module_type: noop}
  - {instance_id: nap, module_type: sleep, depends_on: [first], config: {duration: 60s, steps: 60}}
  - {instance_id: after, module_type: noop, depends_on: [nap]}
"""


@pytest.fixture
def write(tmp_path: Path):
    """Write ``text`` to ``tmp_path/name``; returns the path as a string."""

    def _write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return _write


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """``dag run`` summary table: node → [module, status, ms, detail words...]."""
    lines = stdout.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["NODE", "MODULE", "STATUS", "MS", "DETAIL"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- global options -------------------------------------------------------------------------


def test_version(run_cli) -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"pentora {pentora.__version__}"


def test_help_lists_commands(run_cli) -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: pentora")
    for command in ("dag", "modules", "plugins"):
        assert re.search(rf"^\s+{command}\s+\S", proc.stdout, re.M), command


def test_dag_help_lists_subcommands(run_cli) -> None:
    proc = run_cli("dag", "--help")
    assert proc.returncode == 0
    for command in ("validate", "plan", "graph", "run"):
        assert re.search(rf"^\s+{command}\s+\S", proc.stdout, re.M), command


@pytest.mark.parametrize("args", [
    pytest.param(["bogus"], id="unknown-subcommand"),
    pytest.param(["dag", "frobnicate", EXAMPLE], id="unknown-dag-subcommand"),
    pytest.param([], id="no-command"),
    pytest.param(["dag"], id="missing-dag-subcommand"),
    pytest.param(["dag", "validate"], id="missing-argument"),
    pytest.param(["dag", "graph", EXAMPLE, "--format", "png"], id="bad-choice"),
    pytest.param(["modules", "list", "-p", "bogus"], id="p-without-no"),
    pytest.param(["modules", "list", "-p", "no:"], id="p-empty-name"),
    pytest.param(["dag", "run", EXAMPLE, "--set", "novalue"], id="set-without-value"),
    pytest.param(["dag", "run", EXAMPLE, "--set", "1bad=x"], id="set-bad-key"),
])
def test_usage_errors_exit_2(run_cli, args: list[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert proc.stdout == ""
    assert_no_traceback(proc)


# Walks the parser in a child: importing pentora.cli._main monkey-patches the interpreter.
_OPTION_STRINGS_OF_P = """\
import json, argparse
from pentora.cli._main import build_parser

def walk(parser, out):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                walk(child, out)
        elif action.dest == "plugin_flags":
            out[parser.prog] = action.option_strings
    return out

print(json.dumps(walk(build_parser(), {})))
"""


def test_p_is_an_option_of_every_subcommand() -> None:
    """Regression: scan's own ``-p`` (ports) once removed ``-p`` from the parent parser all
    subcommands share, turning it into a positional that swallowed FILE and TYPE."""
    proc = subprocess.run([sys.executable, "-c", _OPTION_STRINGS_OF_P], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    flags = {prog: strings for prog, strings in json.loads(proc.stdout).items()
             if prog != "pentora scan"}
    assert {"pentora dag run", "pentora modules list", "pentora plugins list"} <= set(flags)
    assert flags == dict.fromkeys(flags, ["-p"])


def test_set_error_names_the_bad_item(run_cli) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--set", "novalue")
    assert "--set takes KEY=VALUE" in proc.stderr and "'novalue'" in proc.stderr


def test_p_error_names_the_bad_flag(run_cli) -> None:
    proc = run_cli("modules", "list", "-p", "bogus")
    assert "-p takes no:NAME" in proc.stderr and "'bogus'" in proc.stderr


# -- dag validate ---------------------------------------------------------------------------


def test_validate_valid_file(run_cli) -> None:
    proc = run_cli("dag", "validate", EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{EXAMPLE}: valid (5 nodes)"


def test_validate_valid_file_json(run_cli) -> None:
    proc = run_cli("dag", "validate", EXAMPLE, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["valid"], data["name"], data["nodes"], data["problems"]) == (True, "hello", 5, [])


def test_validate_invalid_file_lists_every_problem(run_cli, write) -> None:
    path = write("broken.yaml", INVALID_DAG)
    proc = run_cli("dag", "validate", path)
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert f"{len(INVALID_PROBLEMS)} problems in DAG" in proc.stderr
    listed = [line for line in proc.stderr.splitlines() if line.startswith("  - ")]
    assert len(listed) == len(INVALID_PROBLEMS)
    for _, fragment in INVALID_PROBLEMS:
        assert any(fragment in line for line in listed), fragment
    assert all(line.startswith(f"  - {path}:") for line in listed), "each names file and line"


def test_validate_invalid_file_json(run_cli, write) -> None:
    path = write("broken.yaml", INVALID_DAG)
    proc = run_cli("dag", "validate", path, "--format", "json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["valid"] is False
    problems = data["problems"]
    assert isinstance(problems, list) and len(problems) == len(INVALID_PROBLEMS)
    for node, fragment in INVALID_PROBLEMS:
        assert any(p["node"] == node and fragment in p["message"] for p in problems), fragment
    assert {p["source"] for p in problems} == {path}
    assert all(isinstance(p["line"], int) for p in problems)
    assert {p["key"] for p in problems if p["node"] == "c"} == {"config.duration", "config.bogus"}


@pytest.mark.parametrize("text,message", [
    ("name: x\nnodes: [\n", "invalid YAML"),
    ("", "empty DAG"),
])
def test_validate_unreadable_file(run_cli, write, text: str, message: str) -> None:
    proc = run_cli("dag", "validate", write("bad.yaml", text), "--format", "json")
    assert proc.returncode == 1
    assert message in json.loads(proc.stdout)["problems"][0]["message"]


def test_validate_missing_file(run_cli, tmp_path: Path) -> None:
    proc = run_cli("dag", "validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 1
    assert "DAG file not found" in proc.stderr
    assert_no_traceback(proc)


def test_validate_json_dag(run_cli, write) -> None:
    dag = {"name": "j", "nodes": [{"instance_id": "a", "module_type": "noop"},
                                  {"instance_id": "b", "module_type": "noop", "depends_on": ["a"]}]}
    proc = run_cli("dag", "validate", write("dag.json", json.dumps(dag)))
    assert proc.returncode == 0, proc.stderr
    assert "valid (2 nodes)" in proc.stdout


def test_validate_data_contract_with_hooks_module(run_cli, write) -> None:
    hooks = write("needs.py", NEEDS_BANNERS_HOOKS)
    dag = write("contract.yaml", "name: c\nnodes:\n  - {instance_id: a, module_type: noop}\n"
                "  - {instance_id: fingerprint, module_type: needs_banners, depends_on: [a]}\n")
    proc = run_cli("dag", "validate", dag, "--hooks", hooks)
    assert proc.returncode == 1
    assert "Node 'fingerprint' requires 'banners' but no upstream node produces it" in proc.stderr


def test_unknown_profile_lists_available_profiles(run_cli) -> None:
    proc = run_cli("dag", "validate", "nosuchprofile")
    assert proc.returncode == 1
    assert "no DAG file or profile named 'nosuchprofile'" in proc.stderr
    assert_no_traceback(proc)


def test_unknown_profile_says_none_when_no_profiles(run_cli, tmp_path: Path) -> None:
    # -p no:engine.profiles removes the only provider of profile directories.
    proc = run_cli("dag", "validate", "nosuchprofile", "-p", "no:engine.profiles")
    assert proc.returncode == 1
    assert "profiles: none" in proc.stderr


# -- dag plan / graph -----------------------------------------------------------------------


def test_plan_text(run_cli) -> None:
    proc = run_cli("dag", "plan", EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "DAG 'hello': 5 nodes, 3 layers"
    assert "Layer 0: seed" in lines
    assert "Layer 1: stage_a, stage_b, slow_stage" in lines
    assert "Layer 2: join" in lines
    order = lines[lines.index("Execution order:") + 1:]
    assert [re.match(r"\s+\d+\. (\S+) \(", line).group(1) for line in order] == EXAMPLE_NODES
    assert "4. slow_stage (sleep) ← seed  [if ${slow_enabled}]" in proc.stdout
    assert "5. join (noop) ← stage_a, stage_b" in proc.stdout


def test_plan_json(run_cli) -> None:
    proc = run_cli("dag", "plan", EXAMPLE, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "name": "hello", "nodes": 5,
        "layers": [["seed"], ["stage_a", "stage_b", "slow_stage"], ["join"]],
        "order": EXAMPLE_NODES,
    }


def test_plan_of_invalid_dag_exits_1(run_cli, write) -> None:
    proc = run_cli("dag", "plan", write("broken.yaml", INVALID_DAG))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Cycle detected in DAG" in proc.stderr


def test_graph_dot(run_cli) -> None:
    proc = run_cli("dag", "graph", EXAMPLE, "--format", "dot")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.strip()
    assert text.startswith('digraph "hello" {') and text.endswith("}")
    edges = re.findall(r'^\s+"(\w+)" -> "(\w+)";$', text, re.M)
    assert edges == EXAMPLE_EDGES
    for node in EXAMPLE_NODES:
        assert re.search(rf'^\s+"{node}" \[label=', text, re.M), node


def test_graph_mermaid(run_cli) -> None:
    proc = run_cli("dag", "graph", EXAMPLE, "--format", "mermaid")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    ids = dict(re.findall(r'^\s+(\w+)\["(\w+)<br/>\w+"\]$', proc.stdout, re.M))
    assert sorted(ids.values()) == sorted(EXAMPLE_NODES)
    edges = re.findall(r"^\s+(\w+) --> (\w+)$", proc.stdout, re.M)
    assert [(ids[a], ids[b]) for a, b in edges] == EXAMPLE_EDGES


# -- modules and plugins --------------------------------------------------------------------


def test_modules_list(run_cli) -> None:
    proc = run_cli("modules", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "PROVIDER", "DESCRIPTION"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert {t: rows.get(t) for t in ("noop", "sleep", "set")} == dict.fromkeys(
        ("noop", "sleep", "set"), "engine")
    assert "Waits a while, reporting progress" in proc.stdout


def test_modules_show_sleep(run_cli) -> None:
    proc = run_cli("modules", "show", "sleep")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sleep — Waits a while")
    assert "provider:   engine" in proc.stdout
    config = proc.stdout.split("config:", 1)[1].splitlines()[1:]
    assert config[0].split() == ["KEY", "TYPE", "DEFAULT", "DESCRIPTION"]
    assert [line.split() for line in config[1:]] == [
        ["duration", "duration", '"1s"', "how", "long", "to", "wait"],
        ["steps", "positive", "integer", "10", "progress", "updates", "while", "waiting"],
    ]


def test_modules_show_sleep_json(run_cli) -> None:
    proc = run_cli("modules", "show", "sleep", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["config"] == [
        {"key": "duration", "type": "duration", "required": False, "default": "1s",
         "description": "how long to wait"},
        {"key": "steps", "type": "positive integer", "required": False, "default": 10,
         "description": "progress updates while waiting"},
    ]


def test_modules_show_markdown_is_the_generated_page(run_cli) -> None:
    proc = run_cli("modules", "show", "sleep", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "# `sleep`"
    assert [line.split(":**")[0] for line in lines if line.startswith("- **")] == [
        "- **Plugin", "- **Reads", "- **Writes", "- **Runs"]
    assert lines[-4:] == [
        "| option | type | default | description |",
        "| --- | --- | --- | --- |",
        '| `duration` | duration | `"1s"` | how long to wait |',
        "| `steps` | positive integer | `10` | progress updates while waiting |",
    ]


def test_modules_show_required_key(run_cli) -> None:
    proc = run_cli("modules", "show", "set")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\s+values\s+mapping\s+\(required\)\s+mapping of DataContext key to value$",
                     proc.stdout, re.M)


def test_modules_show_unknown_type(run_cli) -> None:
    proc = run_cli("modules", "show", "nosuch")
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert "unknown module type 'nosuch'" in proc.stderr
    assert "pentora modules list" in proc.stderr


def test_modules_show_suggests_nearest_type(run_cli) -> None:
    proc = run_cli("modules", "show", "slep")
    assert proc.returncode == 1
    assert "unknown module type 'slep' (did you mean 'sleep'" in proc.stderr


def test_plugins_list(run_cli) -> None:
    proc = run_cli("plugins", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "DISTRIBUTION", "VERSION", "HOOKS", "/", "ERROR"]
    rows = {line.split(None, 4)[0]: line.split(None, 4)[2:] for line in lines[1:]
            if line.split()[1] == "ok"}
    assert rows["engine"][:2] == ["pentora", pentora.__version__]
    assert "register_modules" in rows["engine"][2] and "register_retry_policies" in rows["engine"][2]
    assert rows["engine.profiles"] == ["pentora", pentora.__version__, "default_profiles, profile_dirs"]
    assert "node_complete" in rows["engine.logging"][2] and "scan_start" in rows["engine.logging"][2]
    assert "node_progress" in rows["engine.progress"][2]


def test_plugins_list_json_includes_hook_files(run_cli, write) -> None:
    hooks = write("printing.py", PRINT_HOOKS)
    proc = run_cli("plugins", "list", "--format", "json", "--hooks", hooks)
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    assert plugins[f"hooks:{hooks}"]["hooks"] == ["pentora_node_complete"]
    assert plugins["engine"]["version"] == pentora.__version__


def test_disabled_plugin_is_gone(run_cli) -> None:
    proc = run_cli("modules", "list", "--format", "json", "-p", "no:engine")
    assert proc.returncode == 0, proc.stderr
    assert not {"noop", "sleep", "set"} & {m["name"] for m in json.loads(proc.stdout)}


# -- dag run --------------------------------------------------------------------------------


def test_run_example(run_cli) -> None:
    proc = run_cli("dag", "run", EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    rows = summary_rows(proc.stdout)
    assert list(rows) == EXAMPLE_NODES
    assert {n: r[1] for n, r in rows.items()} == {
        "seed": "completed", "stage_a": "completed", "stage_b": "completed",
        "slow_stage": "skipped", "join": "completed"}
    assert " ".join(rows["slow_stage"][3:]) == "condition '${slow_enabled}' is false"
    assert float(rows["stage_b"][2]) >= 250  # a 300ms sleep; timers may fire a hair early
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"scan \w+ completed in \d+\.\d\ds: 4 completed, 1 skipped", last), last


def test_run_example_json(run_cli) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["dag"], data["status"], data["ok"]) == ("hello", "completed", True)
    assert data["counts"] == {"completed": 4, "skipped": 1}
    assert [n["node"] for n in data["nodes"]] == EXAMPLE_NODES


def test_run_invalid_dag_exits_1(run_cli, write) -> None:
    proc = run_cli("dag", "run", write("broken.yaml", INVALID_DAG))
    assert proc.returncode == 1
    assert "problems in DAG" in proc.stderr
    assert_no_traceback(proc)


def test_failing_node_exits_3_and_skips_dependents(run_cli, write) -> None:
    hooks = write("boom.py", BOOM_HOOKS)
    dag = write("failing.yaml", FAILING_DAG % ("false", "100ms"))
    proc = run_cli("dag", "run", dag, "--hooks", hooks)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    rows = summary_rows(proc.stdout)
    assert {n: r[1] for n, r in rows.items()} == {
        "ok": "completed", "bad": "failed", "after": "skipped", "other": "completed"}
    assert " ".join(rows["bad"][3:]) == "kaboom from test"
    assert " ".join(rows["after"][3:]) == "upstream 'bad' failed"
    assert "Node execution failed: kaboom from test" in proc.stderr


def test_failed_node_record_in_json(run_cli, write) -> None:
    hooks = write("boom.py", BOOM_HOOKS)
    proc = run_cli("dag", "run", write("failing.yaml", FAILING_DAG % ("false", "100ms")),
                   "--hooks", hooks, "--format", "json")
    assert proc.returncode == 3
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    bad = {n["node"]: n for n in data["nodes"]}["bad"]
    assert (bad["status"], bad["error"], bad["error_type"], bad["retry_attempts"]) == (
        "failed", "kaboom from test", "RuntimeError", 0)
    assert "RuntimeError: kaboom from test" in bad["stack_trace"]
    assert dt.datetime.fromisoformat(bad["timestamp"])


def test_fail_fast_cancels_the_rest_and_exits_3(run_cli, write) -> None:
    hooks = write("boom.py", BOOM_HOOKS)
    proc = run_cli("dag", "run", write("failfast.yaml", FAILING_DAG % ("true", "30s")),
                   "--hooks", hooks, timeout=20)
    assert proc.returncode == 3
    rows = summary_rows(proc.stdout)
    assert {n: r[1] for n, r in rows.items()} == {
        "ok": "completed", "bad": "failed", "after": "cancelled", "other": "cancelled"}
    assert "reason: fail-fast: node 'bad' failed: kaboom from test" in proc.stdout


def test_hook_file_sees_node_completions(run_cli, write) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--hooks", write("printing.py", PRINT_HOOKS))
    assert proc.returncode == 0, proc.stderr
    seen = re.findall(r"^HOOK complete (\w+) (\w+)$", proc.stdout, re.M)
    assert sorted(seen) == sorted((n, "completed") for n in ("seed", "stage_a", "stage_b", "join"))
    assert seen[0] == ("seed", "completed") and seen[-1] == ("join", "completed")


def test_raising_hook_does_not_kill_the_run(run_cli, write) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--hooks", write("raising.py", RAISING_HOOKS))
    # Every node ran; the plugin's failures are listed and the exit code says so.
    assert proc.returncode == 3, proc.stderr
    assert {n: r[1] for n, r in summary_rows(proc.stdout).items()}["join"] == "completed"
    assert "failed in pentora_node_complete: hook exploded on join" in proc.stdout
    for node in ("seed", "stage_a", "stage_b", "join"):
        assert re.search(rf"ERROR .*hook pentora_node_complete of plugin 'hooks:.*raising\.py' "
                         rf"raised ValueError: hook exploded on {node} \(contained", proc.stderr), node


def test_missing_hooks_file_exits_1(run_cli, tmp_path: Path) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--hooks", str(tmp_path / "nope.py"))
    assert proc.returncode == 1
    assert "plugin file not found" in proc.stderr
    assert_no_traceback(proc)


def test_hooks_file_with_unknown_hook_exits_1(run_cli, write) -> None:
    hooks = write("typo.py", PRINT_HOOKS.replace("pentora_node_complete", "pentora_node_completed"))
    proc = run_cli("dag", "run", EXAMPLE, "--hooks", hooks)
    assert proc.returncode == 1
    assert "unknown hook 'pentora_node_completed'" in proc.stderr
    assert_no_traceback(proc)


def test_json_logs(run_cli) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--log-format", "json", "--log-level", "INFO")
    assert proc.returncode == 0, proc.stderr
    records = json_lines(proc.stderr)  # every line is JSON
    node_records = [r for r in records if r.get("component") == "orchestrator" and "node" in r]
    assert node_records
    for rec in node_records:
        assert {"level", "timestamp", "component", "node", "message"} <= set(rec), rec
        assert dt.datetime.fromisoformat(rec["timestamp"]).tzinfo is not None
    started = [r["node"] for r in node_records if r["message"] == "Node execution started"]
    completed = {r["node"]: r for r in node_records if r["message"] == "Node execution completed"}
    assert sorted(started) == sorted(completed) == ["join", "seed", "stage_a", "stage_b"]
    assert all(r["level"] == "info" for r in completed.values())
    assert completed["stage_b"]["duration_ms"] >= 250
    assert all(isinstance(r["duration_ms"], (int, float)) for r in completed.values())
    skipped = [r for r in node_records if r["node"] == "slow_stage"]
    assert len(skipped) == 1 and skipped[0]["message"].startswith("Node skipped")


def test_log_level_filters(run_cli) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--log-format", "json", "--log-level", "warning")
    assert proc.returncode == 0, proc.stderr
    assert all(r["level"] not in ("info", "debug") for r in json_lines(proc.stderr))


def test_log_file(run_cli, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    proc = run_cli("dag", "run", EXAMPLE, "--log-format", "json", "--log-level", "INFO",
                   "--log-file", str(log))
    assert proc.returncode == 0, proc.stderr
    assert "Node execution completed" not in proc.stderr
    assert any(r.get("node") == "join" for r in json_lines(log.read_text()))


def test_unwritable_log_file_is_an_error_not_a_traceback(run_cli, tmp_path: Path) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--log-file", str(tmp_path / "no" / "such" / "dir.log"))
    assert proc.returncode in (1, 2)
    assert_no_traceback(proc)
    assert "error:" in proc.stderr


def test_progress_lines_when_not_a_tty(run_cli) -> None:
    proc = run_cli("dag", "run", EXAMPLE, "--progress")
    assert proc.returncode == 0, proc.stderr
    pattern = re.compile(r"^\[[=> ]{25}\]\s+(\d+)% \((\d)/5 nodes completed\)")
    progress = [pattern.match(line) for line in proc.stderr.splitlines()]
    progress = [(int(m.group(1)), int(m.group(2))) for m in progress if m]
    assert progress[0] == (0, 0)
    assert progress[-1] == (100, 5)
    done = [d for _, d in progress]
    assert done == sorted(done), "done only grows"
    assert set(done) == {0, 1, 2, 3, 4, 5}, "a line for every finished node"
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr, "no redraws when not a tty"


def test_no_progress_without_flag(run_cli) -> None:
    proc = run_cli("dag", "run", EXAMPLE)
    assert "nodes completed)" not in proc.stderr


# -- signals --------------------------------------------------------------------------------


class _Reader(threading.Thread):
    """Collects a pipe's lines; ``seen`` is set once a line satisfies ``match``."""

    def __init__(self, stream, match=lambda line: False) -> None:
        super().__init__(daemon=True)
        self.stream, self.match = stream, match
        self.lines: list[str] = []
        self.seen = threading.Event()
        self.start()

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)
            if self.match(line):
                self.seen.set()

    def text(self) -> str:
        self.join(10)
        return "".join(self.lines)


def _nap_started(line: str) -> bool:
    try:
        rec = json.loads(line)
    except ValueError:
        return False
    return rec.get("node") == "nap" and rec.get("message") == "Node execution started"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_cancels_a_running_dag(write, sig: signal.Signals) -> None:
    dag = write("long.yaml", LONG_DAG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pentora", "dag", "run", dag, "--format", "json",
         "--log-format", "json", "--log-level", "INFO"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = _Reader(proc.stdout), _Reader(proc.stderr, _nap_started)
        deadline = time.monotonic() + 30
        while not err.seen.wait(0.1):
            assert proc.poll() is None and time.monotonic() < deadline, (
                f"the run never started: {err.text()}")
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads(out.text())
    reason = f"interrupted by {sig.name}"
    assert (result["status"], result["error"]) == ("cancelled", reason)
    nodes = {n["node"]: n for n in result["nodes"]}
    assert nodes["first"]["status"] == "completed"
    assert (nodes["nap"]["status"], nodes["nap"]["reason"]) == ("cancelled", reason)
    assert nodes["nap"]["duration_ms"] < 60_000
    assert (nodes["after"]["status"], nodes["after"]["reason"]) == ("cancelled", reason)
    logs = json_lines(err.text())
    assert any(r.get("node") == "nap" and r["message"].startswith("Node cancelled") for r in logs)
