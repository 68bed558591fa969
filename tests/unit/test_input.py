"""``pentora.read_input`` and friends: the one reader of local inputs, as plugins use it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import pentora
from pentora import InputError


def test_a_file_at_the_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"x" * 100)
    assert pentora.read_input(path, what="thing", max_bytes=100) == b"x" * 100
    with pytest.raises(InputError) as info:
        pentora.read_input(path, what="thing", max_bytes=99)
    assert str(info.value) == f"{path}: larger than 99 bytes: over the 99-byte limit for a thing"
    assert info.value.source == str(path) and info.value.line is None


def test_what_is_not_a_regular_file_is_refused_by_its_kind(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    try:
        for path, kind in [("/dev/zero", "a character device"), ("/dev/null", "a character device"),
                           (fifo, "a FIFO (named pipe)"), (sock_path, "a socket"),
                           (tmp_path, "a directory")]:
            with pytest.raises(InputError) as info:
                pentora.read_input(path, what="thing", max_bytes=10)
            assert str(info.value) == f"{path} is {kind}, not a regular file: give a file"
    finally:
        sock.close()


def test_a_symlink_to_a_regular_file_is_read_and_to_a_device_refused(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("ok")
    (tmp_path / "good").symlink_to(tmp_path / "real")
    (tmp_path / "bad").symlink_to("/dev/zero")
    assert pentora.read_input(tmp_path / "good", what="thing", max_bytes=10) == b"ok"
    with pytest.raises(InputError, match="bad is a character device"):
        pentora.read_input(tmp_path / "bad", what="thing", max_bytes=10)


def test_missing_and_unreadable_files_say_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^thing file not found: .*nope \(resolved to /"):
        pentora.read_input(tmp_path / "nope", what="thing", max_bytes=10)
    with pytest.raises(InputError, match=r"^target file not found: "):
        pentora.read_input(tmp_path / "nope", what="target file", max_bytes=10)


def test_stdin_only_where_asked_and_bounded(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found: -"):
        pentora.read_input("-", what="thing", max_bytes=10)
    code = ("import pentora, sys\n"
            "try:\n    pentora.read_input('-', what='thing', max_bytes=1000, stdin=True)\n"
            "except pentora.InputError as e:\n    print(e)\n")
    with open("/dev/zero", "rb") as zero:
        out = subprocess.run([sys.executable, "-c", code], stdin=zero, capture_output=True, text=True,
                             timeout=60)
    assert out.stdout.strip() == "<stdin>: larger than 1000 bytes: over the 1000-byte limit for a thing"


def test_lines_are_bounded_and_numbered(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"one\ntwo\n" + b"x" * 50 + b"\nlast")
    with pentora.open_input(path, what="list", max_bytes=1000) as stream:
        lines = pentora.input_lines(stream, what="list", source=str(path), max_line=20)
        assert next(lines) == (1, b"one\n") and next(lines) == (2, b"two\n")
        with pytest.raises(InputError) as info:
            next(lines)
    assert str(info.value) == f"{path}:3: line longer than 20 bytes: over the limit for a line of a list"
    with pentora.open_input(path, what="list", max_bytes=1000) as stream:
        lines = list(pentora.input_lines(stream, what="list", source=str(path), max_line=60))
    assert lines[-1] == (4, b"last")


@pytest.mark.parametrize(("text", "message"), [
    ("a: 1\na: 2\n", "probes.yaml:2: invalid YAML: duplicate key 'a' (first on line 1)"),
    ("a: !!python/name:os.system\n", "probes.yaml:1: YAML tag '!!python/name:os.system' is not allowed: "
                                     "a probe catalog is plain data"),
    ("a: [&x [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], &y [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x], "
     "&z [*y, *y, *y, *y, *y, *y, *y, *y, *y, *y], [*z, *z, *z, *z, *z, *z, *z, *z, *z, *z]]\n",
     "probes.yaml: YAML aliases expand to"),
    ("a:\n  b: " + "1" * 5000 + "\n", "probes.yaml:2: an integer of 5000 digits is over the"),
    ("a: [\n", "probes.yaml:2: invalid YAML"),
    (b"a: \xff\n", "probes.yaml: not UTF-8 text (byte 3): a probe catalog is YAML or JSON"),
])
def test_load_yaml_has_the_bounds_of_a_dag(text: str | bytes, message: str) -> None:
    with pytest.raises(InputError) as info:
        pentora.load_yaml(text, "probes.yaml", what="probe catalog", max_bytes=1 << 20)
    assert str(info.value).startswith(message), str(info.value)


def test_load_yaml_and_json_values() -> None:
    assert pentora.load_yaml("when: 2001-13-45\nn: 0x10\n", "x", what="t", max_bytes=100) == {
        "when": "2001-13-45", "n": 16}
    assert pentora.load_yaml("", "x", what="t", max_bytes=100) is None
    assert pentora.load_json('{"a": [1, 2.5]}', "x", what="t", max_bytes=100) == {"a": [1, 2.5]}
    with pytest.raises(InputError, match=r"^x: invalid JSON: duplicate key 'a'"):
        pentora.load_json('{"a": 1, "a": 2}', "x", what="t", max_bytes=100)
    with pytest.raises(InputError, match=r"^x: larger than 10 bytes: over the 10-byte limit for a t"):
        pentora.load_json('{"a": 1, "b": 2}', "x", what="t", max_bytes=10)
