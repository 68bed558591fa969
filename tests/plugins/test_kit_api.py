"""The kit's public API: the records and the findings helper at ``pentora_plugins.kit``."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pentora_plugins.kit as kit
from pentora_plugins.kit import findings, records


def test_every_record_is_exported_at_the_top_level() -> None:
    defined = {name for name, obj in vars(records).items()
               if inspect.isclass(obj) and issubclass(obj, records.Record)
               and obj.__module__ == records.__name__}
    assert defined <= set(kit.__all__), f"add {sorted(defined - set(kit.__all__))} to kit/__init__.py"
    for name in defined:
        assert getattr(kit, name) is getattr(records, name), name


def test_the_exports_are_the_submodules_objects() -> None:
    assert kit.add_vulnerabilities is findings.add_vulnerabilities
    assert kit.SEVERITIES == ("info", "low", "medium", "high", "critical")
    assert sorted(kit.__all__) == sorted(set(kit.__all__))
    assert all(hasattr(kit, name) for name in kit.__all__)


def test_the_documented_import_works_in_a_fresh_interpreter() -> None:
    # A fresh process: no other test has imported the submodules first, so a circular
    # import between kit/__init__.py and its submodules would show here.
    code = ("from pentora_plugins.kit import Host, Port, Vulnerability;"
            "import sys;"
            "print(Vulnerability('127.0.0.1', 22, 'X-1').kind, Port('127.0.0.1', 22).kind,"
            " Host('127.0.0.1').kind,"
            " sorted(m for m in sys.modules if m.startswith('pentora_plugins.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    kinds, _, loaded = proc.stdout.partition(" [")
    assert kinds.split() == ["vulnerability", "port", "host"]
    # The top level pulls in what the names asked for come from (the records): no area, no
    # kit.net, and the findings' helper only when it is asked for.
    assert loaded.strip().rstrip("]").replace("'", "").split(", ") == [
        "pentora_plugins.kit", "pentora_plugins.kit.records"]
