"""fingerprint_parser: the built-in catalog against the labelled banner dataset
(precision, recall, every rule used, CPEs), user catalogs and their errors, the module
in a DAG, and robustness (hostile banners, arbitrary text)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pentora_plugins.engine
import pentora_plugins.services
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pentora_plugins.kit.catalog import (
    CPE23,
    CatalogError,
    builtin_path,
    cpe_escape,
    load_catalog,
)
from pentora_plugins.kit.records import Banner, ServiceFingerprint
from pentora_plugins.services.fingerprint_parser import (
    MAX_SCAN,
    fingerprint_banners,
    fingerprint_port,
    match_banner,
    match_port,
)

from pentora import DagBuilder, Orchestrator, ValidationError
from pentora.testing import RecordCollector

DATASET = Path(__file__).parent.parent / "data" / "banners" / "labelled.yaml"
ENTRIES: list[dict[str, Any]] = yaml.safe_load(DATASET.read_text(encoding="utf-8"))["banners"]


def entry_banners(entry: dict[str, Any]) -> list[Banner]:
    raw = entry.get("banners") or [{"probe": entry["probe"], "tls": entry.get("tls", False),
                                    "data": entry["data"]}]
    return [Banner(host="192.0.2.1", port=entry["port"], probe=b["probe"],
                   tls=b.get("tls", False), data=b["data"]) for b in raw]


def same(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower()


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def predictions(catalog):
    """(entry, Match or None) for every labelled entry."""
    return [(e, match_port(catalog, entry_banners(e))) for e in ENTRIES]


# -- the dataset itself ----------------------------------------------------------------------


def test_dataset_is_big_enough_and_well_formed():
    names = [e["name"] for e in ENTRIES]
    assert len(names) == len(set(names)), "duplicate entry names"
    negatives = [e for e in ENTRIES if e["expect"]["product"] is None]
    assert len(ENTRIES) >= 170
    assert len(negatives) >= 25
    for e in ENTRIES:
        assert set(e["expect"]) == {"service", "product", "version"}, e["name"]
        assert e["expect"]["version"] is None or isinstance(e["expect"]["version"], str), e["name"]
        for b in entry_banners(e):
            # \xNN escapes are code points below 256: the latin-1 text of the wire bytes.
            b.data.encode("latin-1")


def test_binary_escapes_are_latin1_code_points_not_utf8():
    mysql = next(e for e in ENTRIES if e["name"] == "mysql-8.0-ubuntu")
    wire = mysql["data"].encode("latin-1")
    assert wire[3:5] == b"\x00\x0a" and int.from_bytes(wire[:3], "little") == len(wire) - 4
    tls = next(e for e in ENTRIES if e["name"] == "neg-tls-alert")
    assert tls["data"].encode("latin-1") == b"\x15\x03\x03\x00\x02\x02\x28"


# -- accuracy over the dataset -----------------------------------------------------------------


def test_precision_and_recall(predictions):
    correct = predicted = labelled = 0
    service_ok = 0
    misses, false = [], []
    for e, m in predictions:
        want = e["expect"]
        service, product, version = (m.service, m.product, m.version) if m else ("unknown", None, None)
        service_ok += service == want["service"]
        if want["product"] is not None:
            labelled += 1
        if product is not None:
            predicted += 1
        hit = (want["product"] is not None and service == want["service"]
               and same(product, want["product"])
               and (want["version"] is None or version == want["version"]))
        if hit:
            correct += 1
        elif want["product"] is not None:
            misses.append(f"{e['name']}: got {service}/{product}/{version}")
        if product is not None and not hit:
            false.append(f"{e['name']}: got {service}/{product}/{version}, want {want}")
    precision, recall = correct / predicted, correct / labelled
    print(f"\nfingerprint dataset: {len(predictions)} entries, {labelled} with a product, "
          f"{len(predictions) - labelled} without; predicted {predicted}, correct {correct}")
    print(f"precision {precision:.3f}  recall {recall:.3f}  "
          f"service accuracy {service_ok / len(predictions):.3f}")
    for line in misses:
        print("  miss:", line)
    assert precision >= 0.95, false
    assert recall >= 0.90, misses
    assert service_ok / len(predictions) >= 0.95


def test_negatives_get_no_product(predictions):
    wrong = [(e["name"], m.product, m.evidence) for e, m in predictions
             if e["expect"]["product"] is None and m is not None and m.product is not None]
    assert wrong == []


def test_every_rule_matches_a_labelled_banner(catalog):
    unused = {r.id for r in catalog.rules}
    for e in ENTRIES:
        for b in entry_banners(e):
            unused -= {m.rule.id for m in match_banner(catalog, b)}
    assert unused == set()


def test_catalog_covers_enough_products_and_protocols(catalog):
    products = {r.product for r in catalog.rules if r.product}
    services = {r.service for r in catalog.rules if r.product}
    print(f"\ncatalog: {len(catalog.rules)} rules, {len(products)} products, "
          f"{len(services)} protocols with products, "
          f"{len({r.service for r in catalog.rules})} protocols")
    assert len(products) >= 40
    assert len(services) >= 20


# -- CPE ---------------------------------------------------------------------------------------


def cpe_fields(cpe: str) -> list[str]:
    return re.split(r"(?<!\\):", cpe)


def test_cpes_are_valid_cpe23_with_the_version_filled(predictions):
    checked = 0
    for e, m in predictions:
        if m is None or m.cpe is None:
            continue
        assert CPE23.match(m.cpe), (e["name"], m.cpe)
        fields = cpe_fields(m.cpe)
        assert len(fields) == 13, m.cpe
        if "{version}" in (m.rule.cpe or ""):
            assert fields[5] == cpe_escape(m.version), (e["name"], m.cpe, m.version)
            if e["expect"]["version"]:
                assert fields[5] == cpe_escape(e["expect"]["version"]) != "*"
                checked += 1
    assert checked >= 100


def test_every_rule_with_a_version_puts_it_in_the_cpe(catalog):
    for r in catalog.rules:
        if r.cpe and r.version and r.cpe.split(":")[2] == "a":
            assert cpe_fields(r.cpe)[5] in ("{version}", "{python}"), r.id


@pytest.mark.parametrize(("value", "escaped"), [
    ("9.2p1", "9.2p1"), ("1.0+deb12u1", "1.0\\+deb12u1"), (None, "*"), ("", "*"),
    ("2.3m beta", "2.3m_beta"), ("a:b", "a\\:b"), ("5.7.42-log", "5.7.42-log"), ("V1.0", "v1.0"),
    ("x*y?", "x\\*y\\?"), ("caf\xe9", "caf"),
])
def test_cpe_escape(value, escaped):
    assert cpe_escape(value) == escaped


def test_cpe_with_odd_version_stays_valid(tmp_path):
    path = write_catalog(tmp_path, [{
        "id": "odd", "service": "x", "product": "X", "match": r"\AX (?P<version>\S+)",
        "cpe": "cpe:2.3:a:x:x:{version}:*:*:*:*:*:*:*"}])
    m = match_port(load_catalog([str(path)]), [banner("X 1:2+3(beta)*?\\")])
    assert m.version == "1:2+3(beta)*?\\"
    assert m.cpe == "cpe:2.3:a:x:x:1\\:2\\+3\\(beta\\)\\*\\?\\\\:*:*:*:*:*:*:*"
    assert CPE23.match(m.cpe)


# -- matching details --------------------------------------------------------------------------


def banner(data: str, probe: str = "passive", port: int = 1, host: str = "127.0.0.1",
           tls: bool = False) -> Banner:
    return Banner(host=host, port=port, probe=probe, tls=tls, data=data)


def test_best_match_over_several_banners_of_a_port(catalog):
    banners = [banner("SSH-2.0-Foo\r\n", "passive"),
               banner("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", "ssh_again")]
    m = match_port(catalog, banners)
    assert (m.service, m.product, m.version) == ("ssh", "OpenSSH", "9.2p1")
    assert m.os == {"family": "Linux", "distribution": "Debian", "release": "12"}
    assert m.evidence.startswith("ssh-openssh [ssh_again]: ")


def test_version_comes_from_another_banner_of_the_same_product(tmp_path):
    path = write_catalog(tmp_path, [
        {"id": "strong", "service": "x", "product": "Thing", "match": r"\AThing here",
         "cpe": "cpe:2.3:a:v:thing:{version}:*:*:*:*:*:*:*", "confidence": 0.9},
        {"id": "weak", "service": "x", "product": "thing", "match": r"\Aversion (?P<version>[\d.]+)",
         "cpe": "cpe:2.3:a:v:thing:{version}:*:*:*:*:*:*:*", "confidence": 0.6}])
    m = match_port(load_catalog([str(path)]), [banner("Thing here"), banner("version 1.2", "v")])
    assert (m.rule.id, m.version, m.cpe) == ("strong", "1.2", "cpe:2.3:a:v:thing:1.2:*:*:*:*:*:*:*")
    assert "version from weak" in m.evidence


def test_probe_restricted_rules_and_min_confidence(catalog):
    assert match_port(catalog, [banner("N", "passive")]) is None
    assert match_port(catalog, [banner("N", "pg_sslrequest")]).service == "postgresql"
    generic = [banner("SSH-2.0-Whatever\r\n")]
    assert match_port(catalog, generic).service == "ssh"
    assert match_port(catalog, generic, min_confidence=0.6) is None


def test_os_and_info_hints(catalog):
    m = match_port(catalog, [banner("HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/10.0\r\n\r\n", "http_get")])
    assert m.os == {"family": "Windows"}
    m = match_port(catalog, [banner("HTTP/1.1 200 OK\r\nServer: Apache/2.4.1 (Whatever)\r\n\r\n")])
    assert m.os is None  # an unknown distribution is no hint
    m = match_port(catalog, [banner("@RSYNCD: 31.0\n")])
    assert m.info == "protocol 31.0"
    m = match_port(catalog, [banner("HTTP/1.0 200 OK\r\nServer: Werkzeug/3.0.1\r\n\r\n")])
    assert (m.version, m.info) == ("3.0.1", None)  # no Python version: no "Python " info


def test_fingerprints_are_sorted_and_unknown_ports_reported(catalog):
    banners = [banner("zzz", port=9, host="127.0.0.2"),
               banner("SSH-2.0-dropbear_2022.83\r\n", port=22, host="127.0.0.2"),
               {"host": "127.0.0.1", "port": 80, "probe": "http_get", "data": "HTTP/1.1 200 OK\r\n\r\n"},
               banner("", port=7, host="::1")]
    out = list(fingerprint_banners(catalog, banners))
    assert [(f.host, f.port, f.service, f.product) for f in out] == [
        ("127.0.0.1", 80, "http", None), ("127.0.0.2", 9, "unknown", None),
        ("127.0.0.2", 22, "ssh", "Dropbear"), ("::1", 7, "unknown", None)]
    assert [f.port for f in fingerprint_banners(catalog, banners, report_unknown=False)] == [80, 22]


# -- the module in a DAG -----------------------------------------------------------------------


Recorder = RecordCollector  # what the scan emits, as (kind, record) pairs


def run_dag(banners: list[Banner], recorder: Recorder | None = None, **config: Any) -> Any:
    orch = Orchestrator(plugins=[pentora_plugins.services, pentora_plugins.engine,
                                 *([recorder] if recorder else [])],
                        autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("banners", "set", config={"values": {"banners": banners}})
                  .add_node("fp", "fingerprint_parser", ["banners"], config=config).build())
    return orch.execute()


def test_module_in_a_dag_publishes_sorted_records_and_emits_them():
    banners = [banner("220 (vsFTPd 3.0.5)\r\n", port=2121, host="127.0.0.3"),
               banner("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n", port=22, host="127.0.0.1"),
               banner("HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\n\r\n", "http_get", port=8081,
                      host="127.0.0.1", tls=True),
               banner("", "passive", port=8081, host="127.0.0.1", tls=True)]
    recorder = Recorder()
    result = run_dag(banners, recorder)
    assert result.ok, result.nodes["fp"].error
    got = result.context.get("service_fingerprints")
    assert got == [
        ServiceFingerprint("127.0.0.1", 22, "tcp", "ssh", "OpenSSH", "8.9p1",
                           "cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*", 0.95, False,
                           'ssh-openssh [passive]: "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10"',
                           {"family": "Linux", "distribution": "Ubuntu"}, "protocol 2.0"),
        ServiceFingerprint("127.0.0.1", 8081, "tcp", "http", "nginx", "1.22.1",
                           "cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*", 0.93, True,
                           'http-nginx [http_get]: "Server: nginx/1.22.1"'),
        ServiceFingerprint("127.0.0.3", 2121, "tcp", "ftp", "vsftpd", "3.0.5",
                           "cpe:2.3:a:beasts:vsftpd:3.0.5:*:*:*:*:*:*:*", 0.97, False,
                           'ftp-vsftpd [passive]: "220 (vsFTPd 3.0.5)"')]
    emitted = [r for kind, r in recorder.records if kind == "service"]
    assert sorted(emitted, key=lambda r: r.sort_key()) == got


def test_module_config_defaults_and_contract():
    orch = Orchestrator(plugins=[pentora_plugins.services, pentora_plugins.engine], autoload=False)
    mtype = orch.registry.modules["fingerprint_parser"]
    assert mtype.schema()({}) == {"catalog": ["builtin"], "min_confidence": 0.0,
                                  "report_unknown": True, "max_scan": MAX_SCAN}
    orch.load_dag(DagBuilder().add_node("fp", "fingerprint_parser").build())
    with pytest.raises(ValidationError, match="requires 'banners' but no upstream node produces it"):
        orch.validate()


def test_min_confidence_and_report_unknown_in_a_dag():
    banners = [banner("SSH-2.0-Go\r\n", port=22), banner("\x00\x01", port=23)]
    result = run_dag(banners, min_confidence=0.6, report_unknown=False)
    assert result.ok and result.context.get("service_fingerprints") == []
    result = run_dag(banners, min_confidence=0.6)
    assert [f.service for f in result.context.get("service_fingerprints")] == ["unknown", "unknown"]


# -- user catalogs -----------------------------------------------------------------------------


def write_catalog(tmp_path: Path, rules: list[dict[str, Any]] | str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(rules if isinstance(rules, str) else yaml.safe_dump({"rules": rules}),
                    encoding="utf-8")
    return path


def test_user_catalog_overrides_adds_and_disables_rules(tmp_path):
    path = write_catalog(tmp_path, [
        {"id": "ssh-openssh", "service": "ssh", "product": "OpenSSH (site build)", "vendor": "openbsd",
         "match": r"\ASSH-\d\.\d+-OpenSSH_(?P<version>[\w.]+)", "confidence": 0.99,
         "cpe": "cpe:2.3:a:openbsd:openssh:{version}:*:*:*:*:*:*:*"},
        {"id": "acme-widget", "service": "widget", "product": "Acme Widget", "vendor": "acme",
         "match": r"\AACME-WIDGET v(\d+\.\d+)", "version": "$1", "probe": "passive",
         "cpe": "cpe:2.3:a:acme:widget:{version}:*:*:*:*:*:*:*", "confidence": 0.9},
        {"id": "ssh-dropbear", "service": "ssh", "match": r"\Ax", "enabled": False},
    ])
    builtin = load_catalog()
    merged = load_catalog(["builtin", str(path)])
    assert len(merged.rules) == len(builtin.rules) + 1 - 1
    assert merged.get("ssh-dropbear") is None
    m = match_port(merged, [banner("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n")])
    assert (m.product, m.version, m.rule.source) == ("OpenSSH (site build)", "9.6p1", str(path))
    m = match_port(merged, [banner("ACME-WIDGET v2.7 ready\r\n")])
    assert (m.service, m.product, m.version, m.cpe) == (
        "widget", "Acme Widget", "2.7", "cpe:2.3:a:acme:widget:2.7:*:*:*:*:*:*:*")
    assert match_port(merged, [banner("ACME-WIDGET v2.7", probe="http_get")]) is None
    m = match_port(merged, [banner("SSH-2.0-dropbear_2022.83\r\n")])
    assert (m.service, m.product) == ("ssh", None)
    # through the module: the list of sources in its config
    result = run_dag([banner("ACME-WIDGET v3.1\r\n")], catalog=["builtin", str(path)])
    assert result.ok, result.nodes["fp"].error
    assert result.context.get("service_fingerprints")[0].product == "Acme Widget"


def test_user_catalog_alone_replaces_builtin(tmp_path):
    path = write_catalog(tmp_path, [{"id": "only", "service": "x", "match": r"\Ax"}])
    result = run_dag([banner("SSH-2.0-OpenSSH_9.2p1\r\n"), banner("xyz", port=2)], catalog=str(path))
    assert [f.service for f in result.context.get("service_fingerprints")] == ["unknown", "x"]


def test_user_catalog_is_reloaded_when_the_file_changes(tmp_path):
    path = write_catalog(tmp_path, [{"id": "r", "service": "one", "match": r"\Ax"}])
    assert load_catalog([str(path)]).rules[0].service == "one"
    path.write_text(yaml.safe_dump({"rules": [{"id": "r", "service": "two!", "match": r"\Ax"}]}))
    assert load_catalog([str(path)]).rules[0].service == "two!"


BAD_RULES = [
    ({"id": "bad-re", "service": "x", "match": r"\A(unclosed"}, "rule 'bad-re' (#1): field 'match': "
                                                                  "invalid regular expression"),
    ({"id": "no-match", "service": "x"}, "rule 'no-match' (#1): missing required field 'match'"),
    ({"id": "extra", "service": "x", "match": r"\Ax", "prodcut": "X"},
     "rule 'extra' (#1): unknown field 'prodcut'"),
    ({"service": "x", "match": r"\Ax"}, "rule #1: missing required field 'id'"),
    ({"id": "loose", "service": "x", "match": "OpenSSH"}, "rule 'loose' (#1): field 'match': "
                                                          "pattern must be anchored"),
    ({"id": "half", "service": "x", "match": r"\Aa|b"}, "field 'match': pattern must be anchored"),
    ({"id": "ahead", "service": "x", "match": r"\Ax(?=y)"}, "field 'match': RE2 has no look-ahead: "
                                                         "rewrite without (?=...)"),
    ({"id": "backref", "service": "x", "match": r"\A(x)\1"}, "field 'match': RE2 has no back-references"),
    ({"id": "end", "service": "x", "match": r"\Ax\Z"}, "field 'match': RE2 has no \\Z: write \\z"),
    ({"id": "verbose", "service": "x", "match": r"\Ax", "flags": "ix"},
     "field 'flags': 'x' (verbose) is not supported"),
    ({"id": "conf", "service": "x", "match": r"\Ax", "confidence": 1.5},
     "field 'confidence': expected a number from 0 to 1, got 1.5"),
    ({"id": "flags", "service": "x", "match": r"\Ax", "flags": "q"}, "field 'flags'"),
    ({"id": "Bad Id", "service": "x", "match": r"\Ax"}, "field 'id'"),
    ({"id": "cpe", "service": "x", "match": r"\Ax", "cpe": "cpe:/a:x:y"},
     "field 'cpe': 'cpe:/a:x:y' is not a CPE 2.3 formatted string"),
    ({"id": "cpe-ref", "service": "x", "match": r"\Ax", "cpe": "cpe:2.3:a:x:y:{nope}:*:*:*:*:*:*:*"},
     "field 'cpe': {nope} is neither {version} nor a named group"),
    ({"id": "tpl", "service": "x", "match": r"\A(x)", "version": "$2"},
     "field 'version': $2 but the regex has only 1 group(s)"),
    ({"id": "tpl-name", "service": "x", "match": r"\A(?P<v>x)", "version": "${ver}"},
     "field 'version': ${ver} names no group of the regex"),
    ({"id": "conv", "service": "x", "match": r"\A(?P<v>x)", "version": "${v:hex}"},
     "field 'version': unknown converter ':hex'"),
    ({"id": "os", "service": "x", "match": r"\Ax", "os": {"kernel": "Linux"}},
     "field 'os': unknown key 'kernel' (known: family, distribution, release)"),
]


@pytest.mark.parametrize(("rule", "message"), BAD_RULES, ids=[r[0].get("id", "no-id") for r in BAD_RULES])
def test_bad_rule_errors_name_file_rule_and_field(tmp_path, rule, message):
    path = write_catalog(tmp_path, [rule])
    with pytest.raises(CatalogError) as err:
        load_catalog(["builtin", str(path)])
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    ("rules: [\n  {id: x\n", "invalid YAML: while parsing a flow mapping"),
    ("rules: {id: x}\n", "expected 'rules:' with a list of rules"),
    ("rulez: []\n", "unknown top-level field(s) rulez"),
    ("rules:\n- id: a\n  service: x\n  match: '\\Ax'\n- id: a\n  service: y\n  match: '\\Ay'\n",
     "rule 'a' (#2): field 'id': duplicate id 'a'"),
    ("rules:\n- just a string\n", "rule #1: expected a mapping of fields"),
])
def test_bad_catalog_files(tmp_path, text, message):
    path = write_catalog(tmp_path, text)
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog([str(path)])


@pytest.mark.parametrize(("text", "message"), [
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "rules: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", "alias bomb"),
    ("rules:\n- id: a\n  id: b\n", "rules.yaml:3: invalid YAML: duplicate key 'id' (first on line 2)"),
    ("rules:\n- id: !!python/object/apply:os.system [true]\n", "is not allowed: a catalog is plain data"),
    ("rules:\n- id: a\n  weight: " + "7" * 4301 + "\n",
     "rules.yaml:3: an integer of 4301 digits is over the 4300-digit limit"),
])
def test_catalog_files_are_read_with_the_bounds_of_a_dag(tmp_path, text, message):
    path = write_catalog(tmp_path, text)
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog([str(path)])


def test_catalog_must_be_a_regular_file(tmp_path):
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)  # no writer: reading it would wait for ever
    for path, kind in [(fifo, "a FIFO (named pipe)"), (Path("/dev/zero"), "a character device")]:
        with pytest.raises(CatalogError, match=re.escape(f"{path} is {kind}, not a regular file")):
            load_catalog([str(path)])


def test_bad_catalog_is_reported_at_validation_naming_node_file_rule_and_field(tmp_path):
    path = write_catalog(tmp_path, [{"id": "oops", "service": "x", "match": r"\A(x"}])
    orch = Orchestrator(plugins=[pentora_plugins.services, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("banners", "set", config={"values": {"banners": []}})
                  .add_node("fp", "fingerprint_parser", ["banners"],
                            config={"catalog": ["builtin", str(path)]}).build())
    with pytest.raises(ValidationError) as err:
        orch.validate()
    text = str(err.value)
    assert "Node 'fp' (fingerprint_parser): config.catalog" in text
    assert f"{path}: rule 'oops' (#1): field 'match': invalid regular expression" in text
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ValidationError, match=re.escape(f"rule catalog {missing}: cannot read it")):
        run_dag([], catalog=str(missing))
    with pytest.raises(ValidationError, match="expected 'builtin', a path"):
        run_dag([], catalog=[])


# -- regex safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "anchored"), [
    (r"\ASSH-[\d.]+-", True), (r"(?m)^Server: x", True), (r"\A(?:[\x01-\x08][\s\S]{4}){0,9}\xff", True),
    (r"\A(?:a|b)c", True), (r"(?:\Aa|^b)", True), (r"(?i)(?P<x>\Aa)", True), (r"(?i:^a|\Ab)c|^d", True),
    (r"SSH-", False), (r"\Aa|b", False), (r"x\A", False), (r"(?:\Aa)?b", False), (r"(?:|\Aa)", False),
    (r"[\^]a", False), (r"\Q^\Ea", False), (r"\\A", False),
])
def test_a_rule_must_be_anchored_in_every_alternative(tmp_path, pattern, anchored):
    path = write_catalog(tmp_path, [{"id": "r", "service": "x", "match": pattern}])
    if anchored:
        assert load_catalog([str(path)]).rules[0].regex.pattern == pattern
    else:
        with pytest.raises(CatalogError, match="field 'match': pattern must be anchored"):
            load_catalog([str(path)])


def test_nested_repeats_are_accepted_now_that_matching_is_linear(tmp_path):
    path = write_catalog(tmp_path, [{"id": "r", "service": "x", "match": r"\A(?:\d+\.)+x"}])
    rule = load_catalog([str(path)]).rules[0]
    assert rule.regex.search("1.22.333.x").group(0) == "1.22.333.x"


def test_builtin_catalog_patterns_are_all_anchored(catalog):
    assert [r.id for r in catalog.rules if not r.regex.anchored()] == []
    assert builtin_path().name == "fingerprints.yaml"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("hostile", [
    "SSH-2.0-" + "a" * (1 << 20),
    "HTTP/1.1 200 OK\r\n" + "Server: " * (1 << 17),
    "\x00" * (1 << 20),
    "HTTP/1.1 200 \r\n" + "<h3>Apache Tomcat/" * 60000,
    "\x30\x84" + "\x02\x01" * (1 << 19),
    '  "number" : "1",' * 70000,
])
def test_hostile_megabyte_banner_is_truncated_and_completes(catalog, hostile):
    assert len(hostile) >= 1 << 20
    m = match_port(catalog, [banner(hostile)])
    if m is not None:
        assert len(m.evidence) < 400
    # A signature past the scan window is not seen: the rest of the banner is never read.
    assert match_port(catalog, [banner("x" * MAX_SCAN + "SSH-2.0-OpenSSH_9.2p1\r\n")]) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.text(), st.text(alphabet=st.characters(max_codepoint=255)),
                      st.builds(lambda p, t: p + t,
                                st.sampled_from(["SSH-2.0-", "HTTP/1.1 200 OK\r\nServer: ", "220 ",
                                                 "* OK ", "+OK ", "RFB 00", "\x03\x00\x00\x13",
                                                 "\x00\x00\x00\x55\xffSMB", "$12\r\n# Server\r\n"]),
                                st.text(alphabet=st.characters(max_codepoint=255)))),
       probe=st.sampled_from(["passive", "http_get", "pg_sslrequest", "mqtt_connect", "", "x"]))
def test_arbitrary_text_never_raises(data, probe):
    cat = load_catalog()
    out = list(fingerprint_banners(cat, [banner(data, probe)]))
    assert len(out) == 1 and isinstance(out[0].service, str)
    if out[0].cpe is not None:
        assert CPE23.match(out[0].cpe)


def test_a_port_is_tls_when_any_banner_came_through_tls_even_if_a_plain_one_matched(catalog):
    # nginx on a TLS port answers a plain-text GET with an HTTP 400 page (which names it)
    # and the TLS probe with its certificate: the port still speaks TLS.
    plain = Banner(host="127.0.0.1", port=8443, probe="http-get", tls=False,
                   data="HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\n\r\n"
                        "The plain HTTP request was sent to HTTPS port")
    tls = Banner(host="127.0.0.1", port=8443, probe="tls", tls=True, data="")
    record = fingerprint_port(catalog, [plain, tls])
    assert (record.product, record.tls) == ("nginx", True)
