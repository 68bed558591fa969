"""Hostile local inputs through the command line: a device, a FIFO or a directory where a
file is expected, YAML that grows through aliases, integers Python will not convert,
impossible dates, and a file named by mistake whose content must not be echoed.

Each case runs ``pentora`` as a process of its own with its address space capped
(``RLIMIT_AS``) and a hang guard: a regression that reads ``/dev/zero`` to the end, waits
on a FIFO for a writer or expands an alias bomb fails here (a MemoryError is an
"internal error", a hang a timeout) instead of eating the machine. The exit codes are
those of docs/cli.md: 1 for an input that cannot be used, 2 for a bad ``--set``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

PENTORA = Path(sys.executable).parent / "pentora"
ADDRESS_SPACE = 1 << 30  # the CLI needs some 400 MB of address space; /dev/zero would need all
HANG_GUARD = 60  # seconds: each case takes about one; this only catches a hang
TARGET = "127.0.0.1"


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def pentora_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(PENTORA), *args], cwd=cwd, capture_output=True, text=True,
                         timeout=HANG_GUARD, preexec_fn=_cap_memory, stdin=subprocess.DEVNULL)
    said = out.stdout + out.stderr
    assert "Traceback" not in said and "internal error" not in said, said
    return out


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "scan.yaml"  # a DAG's name: nothing but its kind gives it away
    os.mkfifo(path)  # never opened for writing: a blocking open or read would wait for ever
    return path


def _not_a_file(tmp_path: Path, fifo: Path) -> dict[str, tuple[str, str]]:
    return {"char-device": ("/dev/zero", "a character device"),
            "fifo": (str(fifo), "a FIFO (named pipe)"),
            "directory": (str(tmp_path), "a directory")}


COMMANDS = {  # name: (arguments with {} for the path, exit code)
    "dag-validate": (["dag", "validate", "{}"], 1),
    "dag-plan": (["dag", "plan", "{}"], 1),
    "dag-run": (["dag", "run", "{}"], 1),
    "scan-dag": (["scan", "--targets", TARGET, "--dag", "{}", "--no-store", "-q"], 1),
    "scan-targets": (["scan", "--targets", "@{}", "--profile", "port-scan", "-p", "1", "--no-store",
                      "-q"], 1),
    "report": (["report", "{}", "--format", "md"], 1),
}
KINDS = ["char-device", "fifo", "directory"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_only_a_regular_file_is_read(command: str, kind: str, tmp_path: Path, fifo: Path) -> None:
    path, what = _not_a_file(tmp_path, fifo)[kind]
    args, code = COMMANDS[command]
    out = pentora_cli(tmp_path, *[a.replace("{}", path) for a in args])
    assert out.returncode == code, out.stderr
    assert f"{path} is {what}, not a regular file: give a file" in out.stderr, out.stderr


def test_report_from_an_endless_stdin_is_bounded(tmp_path: Path) -> None:
    with open("/dev/zero", "rb") as zero:
        out = subprocess.run([str(PENTORA), "report", "-", "--format", "md"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=HANG_GUARD,
                             preexec_fn=_cap_memory, stdin=zero)
    assert out.returncode == 1, out.stderr
    assert "<stdin>:1: line longer than 64 MiB" in out.stderr, out.stderr


def _alias_bomb(levels: int = 9) -> str:
    """A flow sequence that expands to 9^levels items: 16 nodes written, 387 million read."""
    value = "[&a0 [x, x, x, x, x, x, x, x, x]"
    for i in range(1, levels):
        value += f", &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]"
    return value + "]"


HELLO = ("vars:\n  when: null\n  count: 0\n  targets: null\nnodes:\n"
         "  - {instance_id: a, module_type: set, config: {values: {day: '${when}', n: '${count}'}}}\n")


@pytest.mark.parametrize(("value", "message"), [
    (_alias_bomb(), "--set when: YAML aliases expand to"),
    ("9" * 4301, "--set when: an integer of 4301 digits is over the 4300-digit limit; quote it"),
    ("!!python/object/apply:os.system [true]", "--set when: YAML tag '!!python/object/apply:os.system' "
                                              "is not allowed: a --set value is plain data"),
    ("{a: 1, a: 2}", "--set when: invalid YAML: duplicate key 'a'"),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_set_value_is_read_with_the_bounds_of_a_dag(command: str, value: str, message: str,
                                                      tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    out = pentora_cli(tmp_path, "dag", command, "hello.yaml", "--set", f"when={value}")
    assert out.returncode == 2, out.stderr
    assert message in out.stderr, out.stderr
    assert len(out.stderr) < 400, "the value is not echoed"


def test_a_set_value_that_is_an_impossible_date_is_text(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    out = pentora_cli(tmp_path, "dag", "run", "hello.yaml", "--set", "when=2001-13-45",
                      "--format", "json")
    assert out.returncode == 0, out.stderr
    scan = pentora_cli(tmp_path, "scan", "--targets", TARGET, "--dag", "hello.yaml", "--no-store",
                       "-q", "--set", "when=2001-13-45", "--set", "count=" + "7" * 4301)
    assert scan.returncode == 2, scan.stderr
    assert "--set count: an integer of 4301 digits" in scan.stderr


@pytest.mark.parametrize(("name", "text", "message"), [
    ("big.yaml", "vars:\n  n: " + "9" * 4301 + "\nnodes: []\n",
     "big.yaml:2: an integer of 4301 digits is over the 4300-digit limit"),
    ("big.json", '{"vars": {\n"n": ' + "9" * 4301 + '}, "nodes": []}',
     "big.json:2: an integer of 4301 digits is over the 4300-digit limit"),
    ("bomb.yaml", f"vars:\n  n: {_alias_bomb()}\nnodes: []\n", "YAML aliases expand to"),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_dag_with_values_python_cannot_make(command: str, name: str, text: str, message: str,
                                              tmp_path: Path) -> None:
    (tmp_path / name).write_text(text)
    out = pentora_cli(tmp_path, "dag", command, name)
    assert out.returncode == 1, out.stderr
    assert message in out.stderr, out.stderr
    assert "9" * 50 not in out.stderr, "the number is not echoed"


def test_an_impossible_date_in_a_dag_is_text(tmp_path: Path) -> None:
    (tmp_path / "dates.yaml").write_text(HELLO.replace("when: null", "when: 2001-13-45"))
    out = pentora_cli(tmp_path, "dag", "validate", "dates.yaml")
    assert out.returncode == 0, out.stderr


SECRET = "$6$c2FsdHNhbHQ$Zm9vYmFyYmF6cXV4cXV1eGZvb2Jhcg"


def test_a_target_file_named_by_mistake_is_not_echoed(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:{SECRET}:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n")
    out = pentora_cli(tmp_path, "scan", "--targets", f"@{shadow}", "--profile", "port-scan", "-p", "1",
                      "--no-store", "-q")
    assert out.returncode == 1, out.stderr
    assert f"{shadow}:1: not a target (an address, network, range or host name)" in out.stderr
    said = (out.stdout + out.stderr).replace(str(shadow), "")
    for part in (SECRET, "c2FsdHNhbHQ", "19000", "root"):
        assert part not in said, said
