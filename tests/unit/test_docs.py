"""The documentation against the code: generated parts up to date, every module type and
hook documented, every hook tested, examples that run, DAGs that validate, links that
resolve, and examples that target loopback only."""

from __future__ import annotations

import ast
import inspect
import ipaddress
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pentora import Orchestrator, load_dag
from pentora import _docgen as docgen
from pentora.cli import _plugin_new as plugin_new

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
WRITING_PLUGINS = DOCS / "writing-plugins.md"
HELLO = ROOT / "examples" / "pentora-hello-plugin"
PAGES = sorted([README, ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")])
REGENERATE = f"run `{docgen.REGENERATE}` from the repository root"


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


@pytest.fixture(scope="module")
def builtin() -> list[docgen.ModuleType]:
    return docgen.builtin_modules(Orchestrator(autoload=True))


# -- generated parts ---------------------------------------------------------------------------


def test_generated_docs_are_up_to_date(builtin: list[docgen.ModuleType]) -> None:
    problems = docgen.problems(DOCS, builtin)
    assert not problems, "\n".join([*problems, REGENERATE])


def test_every_registered_module_type_has_a_page(builtin: list[docgen.ModuleType]) -> None:
    assert len(builtin) >= 20, "the built-in plugins are not installed: pip install -e ."
    missing = [mt.name for mt in builtin if not (DOCS / "modules" / f"{mt.name}.md").is_file()]
    assert not missing, f"no page in docs/modules/ for {', '.join(missing)}: {REGENERATE}"


def test_every_page_has_its_hand_written_sections(builtin: list[docgen.ModuleType]) -> None:
    for mt in builtin:
        text = (DOCS / "modules" / f"{mt.name}.md").read_text(encoding="utf-8")
        assert "## What it does" in text and "## Configuration" in text, mt.name
        stub = inspect.getdoc(mt.cls) or mt.description
        what = text.split("## What it does", 1)[1].split("##", 1)[0].strip()
        assert what != stub.strip(), f"docs/modules/{mt.name}.md: write what the module does"


def test_the_markdown_of_modules_show_is_what_the_page_holds(builtin: list[docgen.ModuleType]) -> None:
    for mt in builtin:
        text = (DOCS / "modules" / f"{mt.name}.md").read_text(encoding="utf-8")
        assert docgen.config_table(mt) in text and docgen.module_facts(mt) in text


# -- hooks -------------------------------------------------------------------------------------


def hook_names() -> list[str]:
    return [hook.name for hook in docgen.hooks()]


def test_the_hook_specs_are_read() -> None:
    names = hook_names()
    assert "pentora_register_modules" in names and "pentora_node_restore" in names
    assert len(names) == len(set(names)) >= 20


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented_in_writing_plugins(hook: str) -> None:
    text = WRITING_PLUGINS.read_text(encoding="utf-8")
    assert f"#### `{hook}`" in text, f"{hook} is not in docs/writing-plugins.md: {REGENERATE}"
    spec = next(h for h in docgen.hooks() if h.name == hook)
    assert "Example" in spec.doc or "::" in spec.doc, f"the docstring of {hook} gives no example"


def names_of_test_functions() -> list[str]:
    """Every test function's name under tests/ (an AST walk: nothing is imported)."""
    names = []
    for path in (ROOT / "tests").rglob("*.py"):
        if "data" in path.relative_to(ROOT / "tests").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                names.append(node.name)
    return names


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_test_named_after_it(hook: str) -> None:
    tests = [name for name in names_of_test_functions() if hook in name]
    assert tests, (f"no test function's name contains {hook}: write one (e.g. in "
                   f"tests/unit/test_hooks.py, test_{hook}_…)")


# -- examples ----------------------------------------------------------------------------------


def test_readme_python_examples_run(tmp_path: Path) -> None:
    examples = blocks(README, "python")
    assert examples
    for code in examples:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"README example failed:\n{code}\n{proc.stderr}"


NOT_RUN = (".ci/", "pip install")  # set-up commands: .ci/run and the slow install tests cover them


def test_readme_shell_examples_run(tmp_path: Path) -> None:
    examples = [code for code in blocks(README, "sh") if not any(s in code for s in NOT_RUN)]
    assert examples, "the README has no runnable shell example"
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.skip("port 8000 of 127.0.0.1 is taken: the README's scan example needs it free")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for code in examples:
        proc = subprocess.run(["bash", "-e", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"README example failed:\n{code}\n{proc.stdout}\n{proc.stderr}"
    assert "PENTORA-HTTP-DIRECTORY-LISTING" in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert (tmp_path / "report.html").stat().st_size > 0


def test_writing_plugins_module_and_its_test_run(tmp_path: Path) -> None:
    files = {}
    for code in blocks(WRITING_PLUGINS, "python"):
        first = code.splitlines()[0]
        if first.startswith("# file: "):
            files[first[len("# file: "):]] = code
    assert set(files) == {"first_line.py", "test_first_line.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
                           "addopts=", str(tmp_path / "test_first_line.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_the_hello_plugin_in_writing_plugins_is_the_one_the_tests_install() -> None:
    assert (HELLO / "pyproject.toml").read_text(encoding="utf-8") in blocks(WRITING_PLUGINS, "toml")
    source = (HELLO / "pentora_hello" / "__init__.py").read_text(encoding="utf-8")
    assert source in blocks(WRITING_PLUGINS, "python")


def test_the_generated_plugin_in_writing_plugins_is_what_plugins_new_writes() -> None:
    files = plugin_new.render(plugin_new.substitutions("banner_match"))
    assert files["pyproject.toml"] in blocks(WRITING_PLUGINS, "toml")
    for name in ("pentora_banner_match/__init__.py", "tests/test_banner_match.py"):
        assert files[name] in blocks(WRITING_PLUGINS, "python"), name


def test_the_kit_table_in_writing_plugins_matches_the_records() -> None:
    import pentora_plugins.kit as kit

    text = WRITING_PLUGINS.read_text(encoding="utf-8")
    table = text.split("### The kit's public API", 1)[1].split("\n\n| name |", 1)[1]
    rows = re.findall(r"^\| `(\w+)[^`]*` \| ?(?:`(\w+)`)? ?\|", table, re.M)
    assert {name for name, _ in rows} == set(kit.__all__)
    for name, kind in rows:
        assert kind == getattr(getattr(kit, name), "kind", ""), name


def complete_dags() -> list[tuple[str, str]]:
    return [(f"{path.relative_to(ROOT)}#{i}", code) for path in PAGES
            for i, code in enumerate(blocks(path, "yaml")) if re.search(r"^nodes:", code, re.M)]


@pytest.mark.parametrize("where, text", complete_dags())
def test_dags_in_the_docs_validate(where: str, text: str) -> None:
    sys.path.insert(0, str(HELLO))
    try:
        import pentora_hello
    finally:
        sys.path.remove(str(HELLO))
    orch = Orchestrator(plugins=[pentora_hello], autoload=True)
    orch.load_dag(load_dag(text, base_dir=ROOT / "dags" / "examples"))  # where the docs' DAGs sit
    orch.validate(vars={"targets": "127.0.0.1"})


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def loopback_only(spec: str) -> bool:
    for item in re.split(r"[,\s]+", spec.strip().strip("\"'")):
        if not item or item.startswith("${"):
            continue
        ends = item.split("-") if ":" not in item else [item]
        if len(ends) == 2 and "." not in ends[1]:  # 127.0.0.8-10
            ends = ends[:1]
        for end in ends:
            try:
                net = ipaddress.ip_network(end, strict=False)
            except ValueError:
                return False  # a hostname or a file: could be anything
            if not any(net.version == lo.version and net.subnet_of(lo) for lo in LOOPBACK):  # type: ignore[arg-type]
                return False
    return True


def example_targets() -> list[tuple[str, str]]:
    found = []
    for path in PAGES:
        where = str(path.relative_to(ROOT))
        for code in blocks(path, "(?:sh|bash|console)"):
            for line in code.replace("\\\n", " ").splitlines():
                try:
                    words = shlex.split(line, comments=True)
                except ValueError:
                    continue
                found += [(where, words[i + 1]) for i, w in enumerate(words[:-1]) if w in ("--targets", "-t")]
        for code in blocks(path, "yaml"):
            found += [(where, spec) for spec in yaml_targets(yaml.safe_load(code))]
    return found


def yaml_targets(data: object) -> list[str]:
    """Every value of a ``targets`` key, at any depth (vars, target_parser configs)."""
    if isinstance(data, list):
        return [t for item in data for t in yaml_targets(item)]
    if not isinstance(data, dict):
        return []
    found = []
    for key, value in data.items():
        if key == "targets" and isinstance(value, (str, list)):
            found += [value] if isinstance(value, str) else [str(v) for v in value]
        else:
            found += yaml_targets(value)
    return found


def test_examples_target_loopback_only() -> None:
    targets = example_targets()
    assert len(targets) > 10
    outside = [f"{where}: {spec}" for where, spec in targets if not loopback_only(spec)]
    assert not outside, "examples may only target 127.0.0.0/8 or ::1:\n" + "\n".join(outside)


def test_loopback_only_reads_specs() -> None:
    assert loopback_only("127.0.0.1") and loopback_only('"127.0.0.1, 127.0.0.8-10, ::1"')
    assert loopback_only("127.0.0.0/24") and loopback_only("127.0.0.1-127.0.1.5")
    assert loopback_only("${targets}")
    assert not loopback_only("10.0.0.1") and not loopback_only("@hosts.txt")
    assert not loopback_only("example.com") and not loopback_only("127.0.0.1-10.0.0.1")


# -- links and leftovers -----------------------------------------------------------------------


def test_relative_links_resolve() -> None:
    broken = []
    for path in PAGES:
        text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            file = target.split("#")[0]
            if not (path.parent / file).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "\n".join(broken)


def test_the_docs_speak_of_the_project_only() -> None:
    banned = re.compile(r"DESIGN\.md|seed document|the seed's|/work/|/root/|\bissue \d|\bsession\b")
    hits = [f"{path.relative_to(ROOT)}: {m.group(0)}" for path in PAGES
            for m in banned.finditer(path.read_text(encoding="utf-8"))]
    assert not hits, "\n".join(hits)
