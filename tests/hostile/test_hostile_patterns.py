"""A catalog pattern that would backtrack for ever, on a hostile 100 kB answer, finishes:
catalog patterns are matched by RE2, in time linear in the text. Each case runs in a
process of its own with a hang guard, so that a regression fails instead of hanging the
suite (Python's re would spin in C code that no signal interrupts). A catalog whose
pattern RE2 cannot take (a look-ahead) is refused when the DAG is validated, naming the
file, the entry and the field, with exit code 1 and no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

PENTORA = Path(sys.executable).parent / "pentora"
HANG_GUARD = 60  # seconds: the cases take well under one; Python's re would never finish
EVIL = r"(?:\w|\w\w)+Z"  # exponential for a backtracking engine on a run of letters
HOSTILE = 100_000  # letters

# case: (catalog file content, Python code that matches it on hostile text and prints a result)
CASES = {
    "fingerprint_rule": (
        {"rules": [{"id": "evil", "service": "ssh", "match": r"\ASSH-2\.0-" + EVIL}]},
        """
        from pentora_plugins.kit.catalog import load_catalog
        from pentora_plugins.kit.records import Banner
        from pentora_plugins.services.fingerprint_parser import fingerprint_banners
        banner = Banner(host="127.0.0.1", port=22, probe="passive", data="SSH-2.0-" + "a" * N)
        out = list(fingerprint_banners(load_catalog([CATALOG]), [banner], max_scan=2 * N))
        print(out[0].service)
        """),
    "probe_expect": (
        {"probes": [{"name": "evil", "protocol": "evil", "expect": r"\ASSH-2\.0-" + EVIL}]},
        """
        from pentora_plugins.kit.probes import load_catalog
        print(load_catalog(CATALOG).recognise(b"SSH-2.0-" + b"a" * N))
        """),
    "web_technology": (
        {"technologies": [{"id": "evil", "name": "Evil", "categories": ["Misc"],
                           "match": [{"html": EVIL}]}]},
        """
        from pentora_plugins.kit.records import HttpResponse
        from pentora_plugins.web._rules import load_web_catalog
        from pentora_plugins.web.webapp_fingerprinter import identify
        page = HttpResponse(host="127.0.0.1", port=80, status=200, body="a" * N)
        print([t.name for t in identify(load_web_catalog([CATALOG]), page)])
        """),
}
EXPECTED = {"fingerprint_rule": "unknown", "probe_expect": "None", "web_technology": "[]"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_backtracking_pattern_on_hostile_text_finishes(case: str, tmp_path: Path) -> None:
    content, code = CASES[case]
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(content), encoding="utf-8")
    script = f"N = {HOSTILE}\nCATALOG = {json.dumps(str(catalog))}\n" + textwrap.dedent(code)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: matching {HOSTILE:,} hostile bytes did not finish in {HANG_GUARD} s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == EXPECTED[case]
    assert done.stderr == ""  # RE2 logs nothing


def test_catalog_with_a_look_ahead_is_refused_at_validation_naming_the_entry(tmp_path: Path) -> None:
    catalog = tmp_path / "rules.yaml"
    catalog.write_text(yaml.safe_dump({"rules": [
        {"id": "fine", "service": "ssh", "match": r"\ASSH-"},
        {"id": "ahead", "service": "ssh", "match": r"\ASSH-2\.0-(?=OpenSSH)"}]}), encoding="utf-8")
    dag = tmp_path / "dag.yaml"
    dag.write_text(yaml.safe_dump({"name": "lookahead", "nodes": [
        {"instance_id": "banners", "module_type": "set", "config": {"values": {"banners": []}}},
        {"instance_id": "fp", "module_type": "fingerprint_parser", "depends_on": ["banners"],
         "config": {"catalog": ["builtin", str(catalog)]}}]}), encoding="utf-8")
    done = subprocess.run([str(PENTORA), "dag", "validate", str(dag)], capture_output=True,
                          text=True, timeout=HANG_GUARD)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out
    assert f"{catalog}: rule 'ahead' (#2): field 'match': RE2 has no look-ahead" in out
    assert "Node 'fp'" in out
