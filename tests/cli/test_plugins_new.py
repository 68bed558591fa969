"""``pentora plugins new``: the package it writes, the names and directories it refuses, and
the package itself, pip-installed into a fresh virtual environment, tested and scanned with."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pentora.cli import _plugin_new as plugin_new

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "pentora" / "_templates" / "plugin"
PIP_TIMEOUT = 240
EXPECTED_FILES = {"pyproject.toml", "README.md", "pentora_banner_match/__init__.py",
                  "tests/test_banner_match.py"}


def files_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


def assert_usage_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


# -- what it writes -----------------------------------------------------------------------------


def test_plugins_new_writes_an_installable_package(run_cli, tmp_path: Path) -> None:
    proc = run_cli("plugins", "new", "banner_match", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "pentora-banner-match"
    assert files_under(out) == EXPECTED_FILES
    assert "pip install -e './pentora-banner-match[test]'" in proc.stdout

    project = tomllib.loads((out / "pyproject.toml").read_text())
    assert project["project"]["name"] == "pentora-banner-match"
    assert project["project"]["entry-points"]["pentora"] == {"banner_match": "pentora_banner_match"}
    assert project["tool"]["setuptools"]["packages"] == ["pentora_banner_match"]
    source = (out / "pentora_banner_match" / "__init__.py").read_text()
    compile(source, "pentora_banner_match/__init__.py", "exec")
    compile((out / "tests" / "test_banner_match.py").read_text(), "test_banner_match.py", "exec")
    assert "class BannerMatch(pentora.Module):" in source
    assert 'module_type = "banner_match"' in source
    assert "$" not in source  # every placeholder filled in


def test_plugin_is_an_alias_of_plugins(run_cli, tmp_path: Path) -> None:
    proc = run_cli("plugin", "new", "greet_check", "--dir", str(tmp_path / "here"))
    assert proc.returncode == 0, proc.stderr
    assert files_under(tmp_path / "here") == {
        "pyproject.toml", "README.md", "pentora_greet_check/__init__.py", "tests/test_greet_check.py"}
    assert run_cli("plugin", "list").returncode == 0


def test_an_empty_directory_is_written_into(run_cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run_cli("plugins", "new", "banner_match", "--dir", "empty", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert files_under(tmp_path / "empty") == EXPECTED_FILES


def test_every_template_is_written_and_listed_as_package_data() -> None:
    templates = files_under(TEMPLATES)
    assert templates == set(plugin_new.FILES)
    package_data = re.search(r"^pentora = (.*)$", (ROOT / "setup.cfg").read_text(), re.M)
    assert package_data is not None
    globs = [g.strip() for g in package_data.group(1).split(",")]
    for template in templates:
        assert any((TEMPLATES / template).match(f"*/{g}") for g in globs), template


@pytest.mark.parametrize("name, hint", [
    ("My-Check", "try 'my_check'"),
    ("1abc", "try 'abc'"),
    ("a__b", "try 'a_b'"),
    ("greet.py", "try 'greet_py'"),
    ("pentora_greet", "leave out the 'pentora' prefix"),
    ("x" * 41, "at most 40"),
])
def test_a_bad_name_is_a_usage_error_naming_a_fix(run_cli, tmp_path: Path, name: str,
                                                  hint: str) -> None:
    proc = run_cli("plugins", "new", name, cwd=tmp_path)
    assert_usage_error(proc, f"'{name}'", hint)
    assert list(tmp_path.iterdir()) == []


def test_a_builtin_module_type_name_is_refused(run_cli, tmp_path: Path) -> None:
    proc = run_cli("plugins", "new", "banner_grabber", cwd=tmp_path)
    assert_usage_error(proc, "'banner_grabber' is already registered by the plugin 'services'")
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_directory_is_refused_and_left_alone(run_cli, tmp_path: Path) -> None:
    (tmp_path / "pentora-banner-match").mkdir()
    (tmp_path / "pentora-banner-match" / "notes.txt").write_text("mine")
    proc = run_cli("plugins", "new", "banner_match", cwd=tmp_path)
    assert_usage_error(proc, "'pentora-banner-match' exists and is not empty", "--dir PATH")
    assert files_under(tmp_path / "pentora-banner-match") == {"notes.txt"}


def test_a_file_as_dir_is_refused(run_cli, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    assert_usage_error(run_cli("plugins", "new", "banner_match", "--dir", "afile", cwd=tmp_path),
                       "'afile' is a file")
    proc = run_cli("plugins", "new", "banner_match", "--dir", "afile/sub", cwd=tmp_path)
    assert_usage_error(proc, "cannot write the plugin into 'afile/sub'", "choose another --dir")


def test_name_is_required(run_cli, tmp_path: Path) -> None:
    assert_usage_error(run_cli("plugins", "new", cwd=tmp_path), "NAME")


# -- the package at work: installed into a fresh virtual environment -------------------------


@dataclass
class Env:
    python: Path
    project: Path
    workdir: Path

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.python), *args], capture_output=True, text=True,
                              cwd=cwd or self.workdir, env=clean_env(), timeout=120)

    def pentora(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "pentora", *args)


def clean_env() -> dict[str, str]:
    """The environment without anything that would change what pentora or pytest load."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PENTORA_", "PYTHON", "PYTEST_")) and k != "VIRTUAL_ENV"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("plugin_new")
    project = base / "pentora-banner-match"
    proc = subprocess.run([sys.executable, "-m", "pentora", "plugins", "new", "banner_match",
                           "--dir", str(project)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    # pentora and its dependencies come from this test's environment, as a site directory of
    # the new one (so its editable install's .pth files are honoured too): nothing to download
    # or build but the new package. (--system-site-packages would give the system's
    # site-packages, not this virtual environment's.)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "outer_env.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                          "--no-deps", str(project)], capture_output=True, text=True,
                         env=clean_env(), timeout=PIP_TIMEOUT)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    workdir = base / "work"
    workdir.mkdir()
    yield Env(python, project, workdir)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_generated_package_is_imported_from_the_new_environment(generated: Env) -> None:
    proc = generated.run("-c", "import pentora_banner_match as m; print(m.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(generated.python.parent.parent), proc.stdout


@pytest.mark.slow
def test_generated_package_passes_its_own_tests(generated: Env) -> None:
    proc = generated.run("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=generated.project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^4 passed", proc.stdout, re.M), proc.stdout


@pytest.mark.slow
def test_generated_module_is_listed_with_its_schema(generated: Env) -> None:
    proc = generated.pentora("modules", "list", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    [mod] = [m for m in json.loads(proc.stdout) if m["name"] == "banner_match"]
    assert (mod["provider"], mod["requires"], mod["produces"]) == (
        "banner_match", ["open_ports"], ["vulnerabilities"])
    assert mod["description"] == "Reports the open TCP ports whose greeting contains a text."

    shown = json.loads(generated.pentora("modules", "show", "banner_match", "--format", "json").stdout)
    assert [(k["key"], k["default"]) for k in shown["config"]] == [
        ("match", "SSH-1."), ("severity", "medium"), ("timeout", "2s"), ("max_bytes", "1KB")]
    assert all(k["description"] for k in shown["config"])

    plugins = json.loads(generated.pentora("plugins", "list", "--format", "json").stdout)["plugins"]
    [plugin] = [p for p in plugins if p["name"] == "banner_match"]
    assert (plugin["distribution"], plugin["version"]) == ("pentora-banner-match", "0.1.0")


def readme_dag(project: Path) -> str:
    [dag] = re.findall(r"^```yaml\n(.*?)^```", (project / "README.md").read_text(), re.S | re.M)
    return dag


@pytest.mark.slow
def test_the_readme_dag_scans_loopback_with_the_module(generated: Env, tcp_server) -> None:
    old = tcp_server(banner=b"SSH-1.99-OpenSSH_3.9p1\r\n")
    new = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    dag = generated.workdir / "banner_match.yaml"
    dag.write_text(readme_dag(generated.project))
    out = generated.workdir / "found.jsonl"
    proc = generated.pentora("scan", "--dag", str(dag), "--targets", "127.0.0.1",
                             "-p", f"{old.port},{new.port}", "-o", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    found = [(r["port"], r["id"], r["severity"]) for r in records if r["kind"] == "vulnerability"]
    assert found == [(old.port, "BANNER-MATCH-GREETING-MATCH", "medium")]
    nodes = {r["node"]: r["status"] for r in records if r["kind"] == "node"}
    assert nodes == {"targets": "completed", "ports": "completed", "banner_match": "completed"}

    proc = generated.pentora("dag", "run", str(dag), "--set", f"ports={old.port}", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
