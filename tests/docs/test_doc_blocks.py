"""Every shell and Python block of the README and of docs/ runs.

Collected from the Markdown each time, so a new page or block is picked up without a
change here: each ```sh, ```bash and ```console block (in a console block, the ``$ ``
lines and their ``\\`` continuations; the rest is output and is not compared, as ports
and times vary) runs with ``bash -e`` and each ```python block with this interpreter, in
a fresh directory that links to each entry of the repository root (paths are written
from there), with this virtual environment's ``pentora`` first on PATH and a scan store
of the test's own. As root, each runs in a network namespace of its own, whose only
interface is its loopback: nothing can leave it and the ports a block names are free.

A block that cannot run here (it needs the internet, a package manager, a daemon, or is
an illustration) is marked just before its fence, on the line above it or above a blank
line, with ``<!-- not-run: REASON -->``; the test skips it and prints the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pentora.testing import netns_unavailable, network_namespace
from tests.unit.test_docs import loopback_only

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LANGUAGES = {"sh": "shell", "bash": "shell", "console": "console", "python": "python"}
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->\s*\n(?:[ \t]*\n)?$")
TIMEOUT = 300  # a hang guard: the slowest block (a scan of a local server) takes seconds


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    kind: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        kind = LANGUAGES.get(m.group(1))
        if kind is None:
            continue
        marker = NOT_RUN.search(text, 0, m.start())
        found.append(Block(page, text.count("\n", 0, m.start()) + 1, kind, m.group(2),
                           marker.group(1) if marker else None))
    return found


def all_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks_of(page)]


def console_commands(code: str) -> str:
    """The commands of a console block: its ``$ `` lines, with their continuations."""
    out: list[str] = []
    going_on = False
    for line in code.splitlines():
        if line.startswith("$ ") or going_on:
            out.append(line[2:] if line.startswith("$ ") and not going_on else line)
            going_on = line.endswith("\\")
    return "\n".join(out)


def script_of(block: Block) -> list[str]:
    if block.kind == "python":
        return [sys.executable, "-c", block.code]
    code = console_commands(block.code) if block.kind == "console" else block.code
    return ["bash", "-e", "-c", code]


def targets_of(code: str) -> list[str]:
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        found += [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--targets", "-t")]
    return found


def workdir(cwd: Path) -> Path:
    """A fresh directory that looks like the repository root (the docs' paths, such as
    ``.venv/bin/pentora`` or ``dags/standard.yaml``, are written from there): a symbolic
    link to each of its entries, so that what a block writes lands here, not in it."""
    cwd.mkdir()
    for entry in ROOT.iterdir():
        if entry.name != ".git":
            (cwd / entry.name).symlink_to(entry)
    return cwd


def environment(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PENTORA_STORE"] = str(tmp_path / "store" / "scans.db")
    env["HOME"] = str(tmp_path / "home")  # what a block writes under ~ stays in the test
    (tmp_path / "home").mkdir()
    return env


def test_blocks_are_found() -> None:
    found = all_blocks()
    assert len([b for b in found if b.kind == "shell"]) >= 10
    assert any(b.kind == "python" and b.page.name == "README.md" for b in found)
    marked = [b for b in found if b.not_run is not None]
    assert all(b.not_run for b in marked), "a not-run marker without a reason"


def test_console_commands_are_the_dollar_lines() -> None:
    code = "$ pentora scan \\\n    --targets 127.0.0.1\n1 host(s) up\n$ echo done\ndone\n"
    assert console_commands(code) == "pentora scan \\\n    --targets 127.0.0.1\necho done"


def test_a_marker_belongs_to_the_next_block_only(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- not-run: needs root -->\n\n```sh\nid\n```\n\n```sh\ntrue\n```\n")
    first, second = blocks_of(page)
    assert (first.not_run, second.not_run) == ("needs root", None)


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.id)
def test_doc_block_runs(block: Block, tmp_path: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"marked not-run: {block.not_run}")
    outside = [t for t in targets_of(block.code) if not loopback_only(t)]
    assert not outside, f"{block.id} targets {outside}: documentation examples scan loopback only"
    cwd = workdir(tmp_path / "work")
    env = environment(tmp_path)
    if netns_unavailable() is None:
        with network_namespace("pentora-doc") as ns:
            done = ns.run(*script_of(block), check=False, cwd=cwd, env=env, timeout=TIMEOUT)
    else:
        print(f"running on this host's network: {netns_unavailable()}")
        done = subprocess.run(script_of(block), cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
    assert done.returncode == 0, (f"{block.id}: the block exits {done.returncode}\n{block.code}\n"
                                  f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")
