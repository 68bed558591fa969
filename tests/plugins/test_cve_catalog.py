"""cve_matcher's catalogs: the built-in curated one, NVD CVE JSON 2.0 and OSV files, YAML
catalogs, and the refusal of malformed files with the file and JSON path at fault."""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pentora_plugins.cve import sources
from pentora_plugins.cve.builtin import builtin_path
from pentora_plugins.cve.catalog import BLOCK, Catalog, CatalogError, Entry, Range, parse_cpe
from pentora_plugins.cve.sources import load_catalog
from pentora_plugins.kit.cvss import base_score


def ids(catalog: Catalog, vendor: str, product: str, version: str) -> list[str]:
    return [h.entry.id for h in catalog.find(vendor, product, version)]


# -- the built-in catalog -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builtin() -> Catalog:
    return load_catalog()


def test_every_builtin_entry_has_a_source_url_and_a_sane_score() -> None:
    raw = yaml.safe_load(builtin_path().read_text(encoding="utf-8"))["entries"]
    assert len(raw) >= 50
    for e in raw:
        assert re.fullmatch(r"CVE-\d{4}-\d{4,}", e["id"]), e
        assert e["source_url"].startswith("https://"), e["id"]
        assert 0 < e["cvss"] <= 10, e["id"]
    pairs = [(e["id"], e["product"]) for e in raw]
    assert len(pairs) == len(set(pairs)), "an id appears twice for one product"


def test_builtin_covers_the_products_the_fingerprinter_names(builtin: Catalog) -> None:
    fingerprints = (builtin_path().parent / "fingerprints.yaml").read_text(encoding="utf-8")
    for key in ("openbsd:openssh", "f5:nginx", "apache:http_server", "beasts:vsftpd",
                "proftpd:proftpd", "redis:redis", "postgresql:postgresql", "oracle:mysql",
                "mariadb:mariadb", "exim:exim", "postfix:postfix", "dovecot:dovecot",
                "memcached:memcached"):
        assert key in builtin.products()
        assert f"cpe:2.3:a:{key}:" in fingerprints, f"{key} is not how the fingerprinter spells it"


@pytest.mark.parametrize("vendor,product,version,expected,absent", [
    ("openbsd", "openssh", "9.2p1", {"CVE-2024-6387", "CVE-2023-38408", "CVE-2023-48795"}, set()),
    ("openbsd", "openssh", "8.5p1", {"CVE-2024-6387"}, set()),
    ("openbsd", "openssh", "8.4p1", set(), {"CVE-2024-6387"}),
    ("openbsd", "openssh", "9.8p1", {"CVE-2025-26465"}, {"CVE-2024-6387", "CVE-2023-48795"}),
    ("openbsd", "openssh", "10.0p2", set(), {"CVE-2024-6387", "CVE-2025-26465"}),
    ("beasts", "vsftpd", "2.3.4", {"CVE-2011-2523"}, set()),
    ("beasts", "vsftpd", "2.3.5", set(), {"CVE-2011-2523"}),
    ("apache", "http_server", "2.4.49", {"CVE-2021-41773", "CVE-2021-42013"}, set()),
    ("apache", "http_server", "2.4.50", {"CVE-2021-42013"}, {"CVE-2021-41773"}),
    ("apache", "http_server", "2.4.51", set(), {"CVE-2021-41773", "CVE-2021-42013"}),
    ("apache", "http_server", "2.4.71", set(), {"CVE-2024-38476", "CVE-2021-41773"}),
    ("f5", "nginx", "1.20.0", {"CVE-2021-23017"}, set()),
    ("nginx", "nginx", "1.20.1", set(), {"CVE-2021-23017"}),
    ("f5", "nginx", "1.22.1", {"CVE-2024-7347"}, {"CVE-2022-41741"}),
    ("f5", "nginx", "1.22.0", {"CVE-2022-41741", "CVE-2024-7347"}, set()),
    ("redis", "redis", "7.0.15", {"CVE-2024-31449", "CVE-2024-46981", "CVE-2025-49844"},
     {"CVE-2022-24834"}),
    ("redis", "redis", "7.2.6", {"CVE-2024-46981", "CVE-2025-49844"}, {"CVE-2024-31449"}),
    ("redis", "redis", "8.2.2", set(), {"CVE-2025-49844"}),
    ("proftpd", "proftpd", "1.3.5", {"CVE-2015-3306", "CVE-2019-12815"}, set()),
    ("proftpd", "proftpd", "1.3.3c", set(), {"CVE-2010-4221"}),
    ("proftpd", "proftpd", "1.3.2rc3", {"CVE-2010-4221"}, set()),
    ("proftpd", "proftpd", "1.3.2rc2", set(), {"CVE-2010-4221"}),
    ("mariadb", "mariadb", "10.11.19-MariaDB", set(), {"CVE-2021-27928"}),
    ("mariadb", "mariadb", "10.5.8", {"CVE-2021-27928"}, set()),
    ("exim", "exim", "4.89", {"CVE-2019-10149"}, set()),
    ("postgresql", "postgresql", "15.8", {"CVE-2024-10979"}, set()),
    ("postgresql", "postgresql", "15.18", set(), {"CVE-2024-10979"}),
])
def test_builtin_matches_real_versions(builtin: Catalog, vendor: str, product: str, version: str,
                                       expected: set[str], absent: set[str]) -> None:
    found = set(ids(builtin, vendor, product, version))
    assert expected <= found
    assert not absent & found


def test_products_never_meet_each_other(builtin: Catalog) -> None:
    # Tomcat has open-ended ranges of its own ("before 6.0.48"): what must not show is httpd's
    httpd = set(ids(builtin, "apache", "http_server", "2.4.49"))
    assert httpd and httpd.isdisjoint(ids(builtin, "apache", "tomcat", "2.4.49"))
    assert ids(builtin, "openbsd", "opensmtpd", "9.2p1") == []


def test_cpe_parsing() -> None:
    assert parse_cpe("cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*") == ("openbsd", "openssh", "9.2p1")
    assert parse_cpe("cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*") == ("openbsd", "openssh", "9.2p1")
    assert parse_cpe("cpe:2.3:a:f5:nginx:*:*:*:*:*:*:*:*") == ("f5", "nginx", None)
    assert parse_cpe("cpe:2.3:a:foo\\:bar:baz:1.0:*:*:*:*:*:*:*") == ("foo:bar", "baz", "1.0")
    assert parse_cpe("cpe:/a:redis:redis:7.0.15") == ("redis", "redis", "7.0.15")
    assert parse_cpe("not a cpe") is None and parse_cpe("cpe:2.3:a") is None


def test_index_ranges_are_bisected_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of ranges of one product: a look-up checks only the ranges of the blocks
    that start at or below the version and end at or above it, and answers as a scan would."""
    entries = [Entry(id=f"X-{i:04d}", product="v:p",
                     ranges=(Range(start=f"{i}.0", end=f"{i}.5"),)) for i in range(3000)]
    entries.append(Entry(id="OPEN", product="v:p", ranges=(Range(end="2.0"),)))
    catalog = Catalog(entries)
    checked: list[Range] = []
    contains = Range.contains

    def counting(self: Range, key: Any) -> bool:
        checked.append(self)
        return contains(self, key)

    monkeypatch.setattr(Range, "contains", counting)
    for version, expected in [("7.2", ["X-0007"]), ("7.5", []), ("2999.0", ["X-2999"]),
                              ("1.2", ["OPEN", "X-0001"]), ("1.9", ["OPEN"])]:
        checked.clear()
        assert ids(catalog, "v", "p", version) == expected
        assert len(checked) <= 3 * BLOCK, (version, len(checked))
    assert ids(catalog, "v", "q", "7.2") == []


# -- NVD CVE JSON 2.0 -----------------------------------------------------------------------------


def nvd_doc() -> dict[str, Any]:
    """Shaped like an NVD API 2.0 answer (fields trimmed)."""
    return {
        "resultsPerPage": 2, "startIndex": 0, "totalResults": 2, "format": "NVD_CVE",
        "version": "2.0", "timestamp": "2024-07-10T00:00:00.000",
        "vulnerabilities": [
            {"cve": {
                "id": "CVE-2024-6387", "vulnStatus": "Modified",
                "descriptions": [{"lang": "es", "value": "Una regresión"},
                                 {"lang": "en", "value": "A security regression (CVE-2006-5051) "
                                                         "was discovered in OpenSSH's server."}],
                "metrics": {"cvssMetricV31": [
                    {"source": "secalert@redhat.com", "type": "Secondary",
                     "cvssData": {"version": "3.1", "baseScore": 8.1, "baseSeverity": "HIGH",
                                  "vectorString": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"}}]},
                "configurations": [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
                    {"vulnerable": True, "criteria": "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*",
                     "versionEndExcluding": "4.4"},
                    {"vulnerable": True, "criteria": "cpe:2.3:a:openbsd:openssh:4.4:-:*:*:*:*:*:*"},
                    {"vulnerable": True, "criteria": "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*",
                     "versionStartIncluding": "8.5", "versionEndExcluding": "9.8"}]}]}],
                "references": [{"url": "https://www.openssh.com/txt/release-9.8", "source": "x"}]}},
            {"cve": {
                "id": "CVE-2021-23017", "vulnStatus": "Analyzed",
                "descriptions": [{"lang": "en", "value": "A security issue in nginx resolver."}],
                "metrics": {"cvssMetricV31": [
                    {"type": "Secondary", "cvssData": {"baseScore": 9.4}},
                    {"type": "Primary", "cvssData": {"baseScore": 7.7}}]},
                "configurations": [{"operator": "AND", "nodes": [
                    {"operator": "OR", "negate": False, "cpeMatch": [
                        {"vulnerable": True, "criteria": "cpe:2.3:a:nginx:nginx:*:*:*:*:*:*:*:*",
                         "versionStartIncluding": "0.6.18", "versionEndExcluding": "1.20.1"}]},
                    {"operator": "OR", "negate": False, "cpeMatch": [
                        {"vulnerable": False,
                         "criteria": "cpe:2.3:o:debian:debian_linux:10.0:*:*:*:*:*:*:*"}]}]}],
                "references": []}},
            {"cve": {"id": "CVE-2020-0001", "vulnStatus": "Rejected", "configurations": []}},
        ]}


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_nvd_file_ranges_exact_versions_scores_and_references(tmp_path: Path) -> None:
    path = write_json(tmp_path / "nvd-2024.json", nvd_doc())
    catalog = load_catalog([str(path)])
    assert sorted(catalog.products()) == ["f5:nginx", "openbsd:openssh"]  # platform not indexed
    for version, hit in [("9.2p1", True), ("8.5p1", True), ("9.8p1", False), ("4.3p2", True),
                         ("4.4", True), ("4.4p1", False), ("8.4p1", False)]:
        assert (ids(catalog, "openbsd", "openssh", version) == ["CVE-2024-6387"]) is hit, version
    (hit,) = catalog.find("openbsd", "openssh", "9.2p1")
    assert hit.entry.cvss == 8.1 and hit.matched == "range >=8.5, <9.8"
    assert hit.entry.source == "nvd-2024.json"
    assert hit.entry.title.startswith("A security regression")
    assert hit.entry.references == ("https://nvd.nist.gov/vuln/detail/CVE-2024-6387",
                                    "https://www.openssh.com/txt/release-9.8")
    (nginx,) = catalog.find("f5", "nginx", "1.20.0")  # NVD's nginx:nginx is the fingerprinter's f5:nginx
    assert nginx.entry.cvss == 7.7  # the Primary metric


def test_gzip_feed_is_bounded_once_inflated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small .gz may inflate to any size: the limit counts the inflated bytes."""
    monkeypatch.setattr(sources, "FEED_MAX_BYTES", 1 << 20)
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(gzip.compress(b" " * (4 << 20)))  # 4 KiB on disk, 4 MiB inflated
    assert path.stat().st_size < 16 << 10
    with pytest.raises(CatalogError, match=re.escape(f"{path}: inflates to over")):
        load_catalog([str(path)])


@pytest.mark.parametrize(("name", "content", "message"), [
    ("big.json", "{\"id\": " + "9" * 4301 + "}", "big.json:1: an integer of 4301 digits is over the"),
    ("dup.json", '{"id": 1,\n "id": 2}', "invalid JSON: duplicate key 'id'"),
    ("date.yaml", "entries:\n- id: 2001-13-45\n", "$.entries[0].product: missing required field"),
])
def test_feed_values_are_refused_with_their_place(tmp_path: Path, name: str, content: str,
                                                  message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(message)) as e:
        load_catalog([str(path)])
    assert str(e.value).startswith(str(path))


def test_feed_must_be_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="/dev/zero is a character device, not a regular file"):
        load_catalog(["/dev/zero"])


def test_nvd_gzip_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "nvdcve-2.0-2024.json.gz"
    path.write_bytes(gzip.compress(json.dumps(nvd_doc()).encode()))
    assert ids(load_catalog([str(path)]), "openbsd", "openssh", "9.7p1") == ["CVE-2024-6387"]


def test_builtin_and_files_combine(tmp_path: Path) -> None:
    path = write_json(tmp_path / "nvd.json", nvd_doc())
    catalog = load_catalog(["builtin", str(path)])
    assert "CVE-2011-2523" in ids(catalog, "beasts", "vsftpd", "2.3.4")
    sources = {h.entry.id: h.entry.source for h in catalog.find("openbsd", "openssh", "4.4")}
    assert sources["CVE-2016-6210"] == "builtin"
    assert sources["CVE-2024-6387"] == "nvd.json"  # one hit per id: the file's exact version 4.4


def _set(doc: Any, path: list[Any], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()
_MATCH = ["vulnerabilities", 0, "cve", "configurations", 0, "nodes", 0, "cpeMatch", 0]

NVD_BROKEN = [
    (["vulnerabilities"], "x", "$.vulnerabilities: expected a list, got str"),
    (["vulnerabilities", 1], 7, "$.vulnerabilities[1]: expected an object, got int"),
    (["vulnerabilities", 0, "cve"], _DELETE, "$.vulnerabilities[0].cve: missing required field"),
    (["vulnerabilities", 0, "cve", "id"], "OPENSSH-1", "$.vulnerabilities[0].cve.id: expected a CVE id"),
    ([*_MATCH, "criteria"], "openssh <9.8",
     "$.vulnerabilities[0].cve.configurations[0].nodes[0].cpeMatch[0].criteria: expected a CPE 2.3"),
    ([*_MATCH, "versionEndExcluding"], 4.4,
     "cpeMatch[0].versionEndExcluding: expected a string, got float 4.4"),
    ([*_MATCH, "vulnerable"], "yes", "cpeMatch[0].vulnerable: expected true or false, got str"),
    (["vulnerabilities", 0, "cve", "configurations", 0, "nodes"], _DELETE,
     "$.vulnerabilities[0].cve.configurations[0].nodes: missing required field"),
    (["vulnerabilities", 0, "cve", "metrics", "cvssMetricV31", 0, "cvssData", "baseScore"], "high",
     "$.vulnerabilities[0].cve.metrics.cvssMetricV31[0].cvssData.baseScore: expected an integer or"),
    (["vulnerabilities", 0, "cve", "metrics", "cvssMetricV31", 0, "cvssData", "baseScore"], 81,
     "baseScore: expected a score 0-10, got 81"),
    (["vulnerabilities", 0, "cve", "references", 0], {"href": "x"},
     "$.vulnerabilities[0].cve.references[0].url: missing required field"),
]


@pytest.mark.parametrize("where,value,message", NVD_BROKEN)
def test_malformed_nvd_file_is_refused_naming_file_and_json_path(tmp_path: Path, where: list[Any],
                                                                 value: Any, message: str) -> None:
    path = write_json(tmp_path / "broken-nvd.json", _set(nvd_doc(), where, value))
    with pytest.raises(CatalogError) as e:
        load_catalog([str(path)])
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


@pytest.mark.parametrize("content,message", [
    ('{"vulnerabilities": [', "feed.json:1: invalid JSON: Expecting value (line 1, column 22)"),
    ('{"CVE_Items": []}', "an NVD JSON 1.1 feed (CVE_Items)"),
    ('{"hello": 1}', "$: none of the formats a catalog file may have"),
    ('[1, 2]', "$: none of the formats a catalog file may have"),
])
def test_unreadable_or_unknown_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "feed.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(message)) as e:
        load_catalog([str(path)])
    assert str(path) in str(e.value)


def test_missing_file_is_refused_with_the_fix() -> None:
    with pytest.raises(CatalogError, match=r"catalog /nonexistent/cves.json: cannot read it .*"
                                           r"'builtin', 'feeds' or the path of an NVD"):
        load_catalog(["/nonexistent/cves.json"])


# -- OSV --------------------------------------------------------------------------------------------


def osv_doc() -> dict[str, Any]:
    return {
        "schema_version": "1.6.0", "id": "GHSA-whxg-wx83-85p5", "modified": "2024-10-07T00:00:00Z",
        "aliases": ["CVE-2024-31449"],
        "summary": "Lua library commands may lead to stack overflow and potential RCE",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:L/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [
            {"package": {"ecosystem": "GitHub Actions", "name": "redis"},
             "ranges": [{"type": "ECOSYSTEM", "events": [
                 {"introduced": "2.6.0"}, {"fixed": "6.2.16"},
                 {"introduced": "7.0.0"}, {"fixed": "7.2.6"},
                 {"introduced": "7.4.0"}, {"last_affected": "7.4.0"}]},
                 {"type": "GIT", "repo": "https://github.com/redis/redis",
                  "events": [{"introduced": "0"}, {"fixed": "a1b2c3"}]}],
             "versions": ["7.4-rc1"]}],
        "references": [{"type": "ADVISORY", "url": "https://github.com/redis/redis/security/advisories/"
                                                    "GHSA-whxg-wx83-85p5"}],
    }


def test_osv_advisory_events_versions_and_scored_vector(tmp_path: Path) -> None:
    path = write_json(tmp_path / "GHSA-whxg-wx83-85p5.json", osv_doc())
    catalog = load_catalog([str(path)])
    assert catalog.products() == ["*:redis"]
    for version, hit in [("7.0.15", True), ("7.2.6", False), ("6.2.15", True), ("2.5.9", False),
                         ("7.4.0", True), ("7.4.1", False), ("7.4-rc1", True)]:
        # a fingerprint's CPE redis:redis meets the OSV package 'redis'
        assert (ids(catalog, "redis", "redis", version) == ["CVE-2024-31449"]) is hit, version
    (hit,) = catalog.find("redis", "redis", "7.0.15")
    assert hit.entry.cvss == 7.5  # scored from the vector
    assert hit.entry.title == "Lua library commands may lead to stack overflow and potential RCE"
    assert hit.entry.references[0] == "https://osv.dev/vulnerability/GHSA-whxg-wx83-85p5"


def test_osv_list_and_directory_and_qualitative_severity(tmp_path: Path) -> None:
    second = osv_doc() | {"id": "OSV-2024-1", "aliases": [], "severity": [],
                          "database_specific": {"severity": "MODERATE"}}
    second["affected"] = [{"package": {"ecosystem": "OSS-Fuzz", "name": "openbsd:openssh"},
                           "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]
    write_json(tmp_path / "list.json", [osv_doc(), second])
    catalog = load_catalog([str(tmp_path / "list.json")])
    (hit,) = catalog.find("openbsd", "openssh", "1.0")
    assert hit.entry.id == "OSV-2024-1" and hit.entry.cvss is None and hit.entry.severity == "medium"
    osv_dir = tmp_path / "osv"
    osv_dir.mkdir()
    write_json(osv_dir / "a.json", osv_doc())
    write_json(osv_dir / "b.json", second)
    assert len(load_catalog([str(osv_dir)])) == 2


_EVENTS = ["affected", 0, "ranges", 0, "events"]

OSV_BROKEN = [
    (["affected"], _DELETE, "$.affected: missing required field"),
    (["affected", 0, "package", "name"], 5, "$.affected[0].package.name: expected a string, got int"),
    (["affected", 0, "package"], _DELETE, "$.affected[0].package: missing required field"),
    (["affected", 0, "ranges", 0, "type"], "SEMVERISH",
     "$.affected[0].ranges[0].type: expected ECOSYSTEM, SEMVER or GIT, got 'SEMVERISH'"),
    ([*_EVENTS, 1], {"patched": "6.2.16"}, "$.affected[0].ranges[0].events[1]: unknown event 'patched'"),
    ([*_EVENTS, 0], {"fixed": "1.0"}, "$.affected[0].ranges[0].events[0]: 'fixed' without an 'introduced'"),
    ([*_EVENTS, 0], {"introduced": 2}, "$.affected[0].ranges[0].events[0].introduced: expected a string"),
    ([*_EVENTS, 0], {"introduced": "1", "fixed": "2"},
     "$.affected[0].ranges[0].events[0]: expected one of introduced"),
    (["severity", 0, "score"], "CVSS:3.1/AV:N/AC:L",
     "$.severity[0].score: 'CVSS:3.1/AV:N/AC:L' lacks base metric(s) PR, UI, S, C, I, A"),
    (["severity", 0, "score"], "CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
     "$.severity[0].score: unknown value of metric AV"),
    (["affected", 0, "versions", 0], ["7.4"], "$.affected[0].versions[0]: expected a string, got list"),
]


@pytest.mark.parametrize("where,value,message", OSV_BROKEN)
def test_malformed_osv_file_is_refused_naming_file_and_json_path(tmp_path: Path, where: list[Any],
                                                                 value: Any, message: str) -> None:
    path = write_json(tmp_path / "broken-osv.json", _set(osv_doc(), where, value))
    with pytest.raises(CatalogError) as e:
        load_catalog([str(path)])
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


def test_osv_entry_without_affected_versions_is_refused(tmp_path: Path) -> None:
    doc = osv_doc()
    doc["affected"][0]["ranges"] = [doc["affected"][0]["ranges"][1]]  # GIT only
    del doc["affected"][0]["versions"]
    path = write_json(tmp_path / "git-only.json", doc)
    with pytest.raises(CatalogError, match=r"\$\.affected\[0\]: no affected versions"):
        load_catalog([str(path)])


# -- YAML catalogs and CVSS ---------------------------------------------------------------------


def test_user_yaml_catalog(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump({"entries": [{
        "id": "CVE-2099-0001", "product": "acme:widget", "title": "t", "cvss": 6.1,
        "affected": [{"after": "1.0", "through": "1.4"}, {"version": "2.0"}],
        "source_url": "https://example.invalid/advisory"}]}), encoding="utf-8")
    catalog = load_catalog([str(path)])
    assert [ids(catalog, "acme", "widget", v) != [] for v in ("1.0", "1.0.1", "1.4", "1.5", "2.0")] \
        == [False, True, True, False, True]


@pytest.mark.parametrize("entry,message", [
    ({"affected": [{"from": 1.20}]}, "$.entries[0].affected[0].from: quote versions ('1.2')"),
    ({"product": "widget"}, "$.entries[0].product: expected CPE vendor:product"),
    ({"source_url": "http://x"}, "$.entries[0].source_url: expected an https:// URL"),
    ({"cvss": 11}, "$.entries[0].cvss: expected a CVSS base score 0-10"),
    ({"severity": "high"}, "$.entries[0].severity: unknown field"),
    ({"affected": [{"from": "1", "after": "2"}]}, "one lower bound (from/after)"),
    ({"affected": []}, "$.entries[0].affected: expected at least one range"),
])
def test_malformed_yaml_catalog_is_refused(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    base = {"id": "CVE-2099-0001", "product": "acme:widget", "cvss": 5.0,
            "affected": [{"version": "1"}], "source_url": "https://example.invalid/a"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"entries": [base | entry]}), encoding="utf-8")
    with pytest.raises(CatalogError) as e:
        load_catalog([str(path)])
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


@pytest.mark.parametrize("vector,score", [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
    ("CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:N/I:N/A:H", 4.7),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
    ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
])
def test_cvss_v3_base_scores(vector: str, score: float) -> None:
    assert base_score(vector) == score
