"""The code checks CI runs with the tests: ruff on everything, mypy on the core and the plugins."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[lint]')")
    return found


def test_ruff_is_clean():
    proc = subprocess.run([_tool("ruff"), "check", "pentora", "plugins", "tests"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean_on_the_core_and_the_plugins():
    """Plain ``mypy``: pyproject.toml names pentora/ and plugins/ (as pentora_plugins)."""
    proc = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
