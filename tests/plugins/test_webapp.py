"""webapp_fingerprinter: the built-in catalog against the labelled samples of
tests/data/webapps/samples.yaml (every technology recognised by at least one sample,
negatives recognise nothing), catalog errors, user catalogs, and the module on real
servers on 127.0.0.1 (well-known paths fetched, nothing but GET sent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pentora_plugins.engine
import pentora_plugins.web
import pytest
import yaml
from pentora_plugins.kit.catalog import CPE23, CatalogError
from pentora_plugins.kit.net.http_facts import parse_cookies, title_of
from pentora_plugins.kit.records import HttpResponse, WebTechnology
from pentora_plugins.web._rules import load_web_catalog
from pentora_plugins.web.webapp_fingerprinter import identify, meta_tags

from pentora import DagBuilder, Orchestrator, ValidationError
from pentora.testing import RecordCollector

from ._httpd import Route, html_route, serving

SAMPLES_FILE = Path(__file__).parent.parent / "data" / "webapps" / "samples.yaml"
SAMPLES: list[dict[str, Any]] = yaml.safe_load(SAMPLES_FILE.read_text(encoding="utf-8"))["samples"]
REQUIRED = {"WordPress", "Drupal", "Joomla", "Jenkins", "Grafana", "phpMyAdmin", "Apache Tomcat",
            "Django", "Flask", "Werkzeug", "Express", "Next.js", "nginx", "Apache HTTP Server",
            "Microsoft IIS", "PHP", "ASP.NET", "jQuery", "Bootstrap", "React", "Vue.js", "Laravel",
            "Ruby on Rails", "Spring Boot", "GitLab", "Kibana"}


def response(part: dict[str, Any], port: int = 80) -> HttpResponse:
    body = part.get("body", "")
    cookies = parse_cookies([f"{name}=x" for name in part.get("cookies", [])])
    return HttpResponse(host="127.0.0.1", port=port, url=f"http://127.0.0.1:{port}/",
                        status=part.get("status", 200),
                        headers={k.lower(): str(v) for k, v in part.get("headers", {}).items()},
                        cookies=cookies, body=body, title=title_of(body))


def sample_found(catalog: Any, sample: dict[str, Any]) -> list[WebTechnology]:
    main = response(sample["response"])
    paths = {p: response(part) for p, part in (sample.get("paths") or {}).items()}
    if sample.get("catch_all"):
        paths = {p: main for p in catalog.paths()}
    return identify(catalog, main, paths)


@pytest.fixture(scope="module")
def catalog():
    return load_web_catalog()


# -- the catalog against the labelled samples ------------------------------------------------


def test_catalog_is_big_enough_and_names_the_required_technologies(catalog):
    names = {t.name for t in catalog.technologies}
    assert len(catalog.technologies) >= 30
    assert REQUIRED <= names, f"missing: {REQUIRED - names}"
    assert len(SAMPLES) >= 40 and sum(1 for s in SAMPLES if not s["expect"]) >= 5


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["name"] for s in SAMPLES])
def test_sample_gives_exactly_the_labelled_technologies(catalog, sample):
    found = {t.name: t for t in sample_found(catalog, sample)}
    expected = {catalog.get(i).name: v for i, v in sample["expect"].items()}
    assert set(found) == set(expected), "\n".join(f"{t.name}: {t.evidence}" for t in found.values())
    for name, version in expected.items():
        assert found[name].version == version, f"{name}: {found[name].evidence}"


def test_every_technology_is_recognised_directly_by_some_sample(catalog):
    direct: set[str] = set()
    for sample in SAMPLES:
        direct |= {t.name for t in sample_found(catalog, sample)
                   if not t.evidence.startswith("implied by")}
    unused = [t.id for t in catalog.technologies if t.name not in direct]
    assert not unused, f"technologies no sample recognises: {unused}"


def test_every_path_the_catalog_names_is_used_by_a_matching_sample(catalog):
    used = {p for s in SAMPLES if s["expect"] for p in (s.get("paths") or {})}
    assert set(catalog.paths()) <= used


def test_cpes_are_cpe23_with_the_version_filled_in(catalog):
    for sample in SAMPLES:
        for t in sample_found(catalog, sample):
            if t.cpe is not None:
                assert CPE23.match(t.cpe), t.cpe
                assert t.cpe.split(":")[5] == (t.version or "*"), t.cpe
    wp = next(t for t in sample_found(catalog, SAMPLES[5]) if t.name == "WordPress")
    assert wp.cpe == "cpe:2.3:a:wordpress:wordpress:6.4.2:*:*:*:*:*:*:*"
    assert 0 < wp.confidence <= 0.99 and "meta generator" in wp.evidence


def test_implied_technology_says_so_and_is_less_certain(catalog):
    found = {t.name: t for t in sample_found(catalog, next(s for s in SAMPLES if s["name"] == "nextjs"))}
    assert found["React"].evidence == "implied by Next.js"
    assert found["React"].confidence < found["Next.js"].confidence


def test_meta_tags_take_any_attribute_order_and_quotes():
    tags = meta_tags("<meta content='GitLab' property=og:site_name><meta name=\"Generator\" "
                     "content=\"Drupal 10\"><meta charset=utf-8>")
    assert tags == {"og:site_name": "GitLab", "generator": "Drupal 10"}


def test_hostile_body_is_matched_in_bounded_time(catalog):
    body = "<meta " + "a=" * 50000 + "<script src=" + "x" * 100000
    r = HttpResponse(host="127.0.0.1", port=80, status=200, body=body)
    assert identify(catalog, r) == []


# -- catalog errors ---------------------------------------------------------------------------

GOOD = {"id": "thing", "name": "Thing", "categories": ["Misc"],
        "match": [{"header": "server", "pattern": "^thing/(?P<version>[\\d.]+)"}]}


def write_catalog(tmp_path: Path, *techs: dict[str, Any], name: str = "web.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"technologies": list(techs)}), encoding="utf-8")
    return path


@pytest.mark.parametrize("change, fragments", [
    ({"match": [{"html": "nginx(?![\\w-])"}]}, ["technology 'thing'", "matcher #1", "field 'html'",
                                                "RE2 has no negative look-ahead", "(?:[^\\w-]|$)"]),
    ({"match": [{"header": "server", "pattern": "(x)\\1"}]}, ["matcher #1", "field 'pattern'",
                                                              "RE2 has no back-references"]),
    ({"match": [{"html": "([a-z"}]}, ["technology 'thing'", "invalid regular expression"]),
    ({"match": [{"header": "server", "html": "x"}]}, ["matcher #1", "exactly one of"]),
    ({"match": [{"html": "x", "pattern": "y"}]}, ["field 'pattern' goes with header or meta"]),
    ({"match": [{"html": "x", "status": 200}]}, ["field 'status' needs 'path'"]),
    ({"match": [{"html": "x", "colour": "red"}]}, ["unknown field 'colour'"]),
    ({"match": [{"html": "(?P<v>x)", "version": "${version}"}]}, ["field 'version'", "no group"]),
    ({"match": []}, ["technology 'thing'", "at least one matcher"]),
    ({"cpe": "cpe:/a:thing:thing"}, ["field 'cpe'", "not a CPE 2.3"]),
    ({"implies": ["nothing"]}, ["technology 'thing'", "no technology 'nothing'"]),
    ({"categories": []}, ["technology 'thing'", "categories"]),
    ({"id": "Bad Id"}, ["field 'id'"]),
])
def test_malformed_technology_is_refused_naming_it(tmp_path, change, fragments):
    path = write_catalog(tmp_path, {**GOOD, **change})
    with pytest.raises(CatalogError) as e:
        load_web_catalog(str(path))
    message = str(e.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_catalog_file_problems_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\n")
    with pytest.raises(CatalogError, match="one top-level field 'technologies:'"):
        load_web_catalog(str(bad))
    with pytest.raises(CatalogError, match="cannot read it"):
        load_web_catalog(str(tmp_path / "missing.yaml"))
    dup = write_catalog(tmp_path, GOOD, GOOD, name="dup.yaml")
    with pytest.raises(CatalogError, match="duplicate id 'thing'"):
        load_web_catalog(str(dup))


def test_user_catalog_adds_replaces_and_disables(tmp_path, catalog):
    user = write_catalog(tmp_path, GOOD, {"id": "nginx", "enabled": False, "name": "nginx",
                                          "categories": ["x"], "match": [{"html": "x"}]})
    merged = load_web_catalog(["builtin", str(user)])
    assert merged.get("nginx") is None and merged.get("thing") is not None
    assert len(merged.technologies) == len(catalog.technologies)
    r = HttpResponse(host="127.0.0.1", port=80, status=200, headers={"server": "thing/2.1"})
    assert [(t.name, t.version) for t in identify(merged, r)] == [("Thing", "2.1")]


def test_bad_catalog_fails_dag_validation_naming_node_and_file(tmp_path):
    path = write_catalog(tmp_path, {**GOOD, "match": [{"html": "(?<=x)y"}]})
    orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder().add_node("seed", "set", config={"values": {"http_responses": []}})
                  .add_node("web", "webapp_fingerprinter", ["seed"], config={"catalog": str(path)})
                  .build())
    with pytest.raises(ValidationError) as e:
        orch.validate()
    assert "web" in str(e.value) and str(path) in str(e.value) and "technology 'thing'" in str(e.value)
    assert "RE2 has no look-behind" in str(e.value)


# -- the module on real servers -----------------------------------------------------------------

WORDPRESS = {
    "/": html_route('<meta name="generator" content="WordPress 6.4.2" />'
                    '<script src="/wp-includes/js/jquery/jquery.min.js?ver=3.7.1"></script>',
                    ("Server", "nginx/1.24.0"), ("X-Powered-By", "PHP/8.2.7")),
    "/wp-login.php": html_route('<form name="loginform" id="loginform" method="post">'),
}
GRAFANA = {
    "/": Route(302, [("Location", "/login")]),
    "/login": html_route("<title>Grafana</title><script>window.grafanaBootData = {};</script>"),
    "/api/health": Route(200, [("Content-Type", "application/json")],
                         '{"commit": "abc", "database": "ok", "version": "10.2.3"}'),
}


def run_scan(ports: list[int], **config: Any) -> tuple[Any, RecordCollector]:
    collector = RecordCollector()
    orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.engine, collector], autoload=False)
    fps = [{"host": "127.0.0.1", "port": p, "protocol": "tcp", "service": "http"} for p in ports]
    orch.load_dag(DagBuilder().add_node("seed", "set", config={"values": {"service_fingerprints": fps}})
                  .add_node("http", "http_scanner", ["seed"], config={"methods": ["GET"], "favicon": False})
                  .add_node("web", "webapp_fingerprinter", ["http"], config=config).build())
    return orch.execute(), collector


def test_module_fingerprints_real_servers_with_their_well_known_paths():
    with serving(WORDPRESS) as wp, serving(GRAFANA) as grafana:
        result, collector = run_scan([wp.port, grafana.port])
    assert result.ok, result.nodes["web"].error
    techs = result.context.get("web_technologies")
    by_port = {p: {(t.name, t.version) for t in techs if t.port == p} for p in (wp.port, grafana.port)}
    assert by_port[wp.port] == {("nginx", "1.24.0"), ("PHP", "8.2.7"), ("WordPress", "6.4.2"),
                                ("jQuery", "3.7.1")}
    assert by_port[grafana.port] == {("Grafana", "10.2.3")}
    assert sorted(collector.of("webtech"), key=WebTechnology.sort_key) == techs
    # every well-known path asked once per port, by GET only
    assert set(wp.methods()) == {"GET"}
    paths = [p for _, p, _ in wp.requests]
    assert "/wp-login.php" in paths and "/api/health" in paths and len(paths) == len(set(paths))
    assert techs == sorted(techs, key=WebTechnology.sort_key)


def test_probe_paths_off_asks_nothing_more():
    with serving(WORDPRESS) as wp:
        result, _ = run_scan([wp.port], probe_paths=False)
        assert [p for _, p, _ in wp.requests] == ["/"]
    assert {t.name for t in result.context.get("web_technologies")} == {"nginx", "PHP", "WordPress", "jQuery"}


def test_responses_without_an_answer_are_skipped_and_min_confidence_filters(closed_tcp_port):
    with serving(WORDPRESS) as wp:
        result, _ = run_scan([wp.port, closed_tcp_port], min_confidence=0.9, probe_paths=False)
    techs = result.context.get("web_technologies")
    assert {t.port for t in techs} == {wp.port}
    assert all(t.confidence >= 0.9 for t in techs)


def test_records_read_back_as_mappings_are_accepted_and_junk_is_refused_clearly():
    record = {"kind": "http", "host": "127.0.0.1", "port": 8080, "status": 200,
              "headers": {"x-powered-by": "Express"}, "body": "", "cookies": []}
    orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder().add_node("seed", "set", config={"values": {"http_responses": [record]}})
                  .add_node("web", "webapp_fingerprinter", ["seed"], config={"probe_paths": False})
                  .build())
    result = orch.execute()
    assert {t.name for t in result.context.get("web_technologies")} == {"Express", "Node.js"}
    orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder().add_node("seed", "set", config={"values": {"http_responses": ["junk"]}})
                  .add_node("web", "webapp_fingerprinter", ["seed"]).build())
    result = orch.execute()
    assert "expected HttpResponse records (from http_scanner)" in result.nodes["web"].error
