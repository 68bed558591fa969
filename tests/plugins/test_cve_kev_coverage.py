"""The built-in CVE catalog holds every CVE of CISA's Known Exploited Vulnerabilities
catalog (KEV) for the products the fingerprint and web-technology catalogs can name,
flagged ``kev: true``, under the product key the matcher looks those products up by.

The ground truth is a copy of CISA's catalog in ``tests/data/kev``. ``KEV_PRODUCTS`` maps
KEV's (vendorProject, product) names to the catalog's product keys; ``NOT_NAMEABLE`` names
the KEV products a fingerprint reaches only through an operating system or a plugin, whose
CVEs the catalog does not hold, and why; ``VERSION_UNSEEN`` the named products whose version
no fingerprint reads, so that no entry of theirs could match; ``LEFT_OUT`` the single CVEs
of mapped products that are not in it, and why.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pentora_plugins.cve.builtin import builtin_part, builtin_path
from pentora_plugins.cve.catalog import Entry, parse_cpe, product_key
from pentora_plugins.cve.sources import load_catalog
from pentora_plugins.kit.catalog import load_catalog as load_fingerprints
from pentora_plugins.web._rules import load_web_catalog

KEV_FILE = Path(__file__).parents[1] / "data" / "kev" / "known_exploited_vulnerabilities.json.gz"

# KEV (vendorProject, product) → the catalog product keys its CVEs are filed under: the
# CPE vendor:product of the fingerprint rule or web technology that names the product.
KEV_PRODUCTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("Apache", "HTTP Server"): ("apache:http_server",),
    ("Apache", "Apache"): ("apache:http_server",),          # CVE-2021-40438, mod_proxy
    ("Apache", "Tomcat"): ("apache:tomcat",),
    ("Microsoft", "Internet Information Services (IIS)"): ("microsoft:internet_information_services",),
    ("Exim", "Exim"): ("exim:exim",),
    ("Exim", "Exim Internet Mailer"): ("exim:exim",),
    ("Exim", "Mail Transfer Agent (MTA)"): ("exim:exim",),
    ("OpenBSD", "OpenSMTPD"): ("openbsd:opensmtpd",),
    ("PHP", "PHP"): ("php:php",),
    ("PHP Group", "PHP"): ("php:php",),
    ("PHP", "FastCGI Process Manager (FPM)"): ("php:php",),
    ("Drupal", "Core"): ("drupal:drupal",),
    ("Drupal", "Drupal Core"): ("drupal:drupal",),
    ("Drupal", "Drupal core"): ("drupal:drupal",),
    ("Joomla!", "Joomla!"): ("joomla:joomla!",),
    ("Jenkins", "Jenkins Command Line Interface (CLI)"): ("jenkins:jenkins",),
    ("Jenkins", "Jenkins Stapler Web Framework"): ("jenkins:jenkins",),
    ("Jenkins", "Jenkins User Interface (UI)"): ("jenkins:jenkins",),
    ("GitLab", "Community and Enterprise Editions"): ("gitlab:gitlab",),
    ("GitLab", "GitLab CE/EE"): ("gitlab:gitlab",),
    ("JQuery", "JQuery"): ("jquery:jquery",),
    ("Roundcube", "Roundcube Webmail"): ("roundcube:webmail",),
    ("Roundcube", "Webmail"): ("roundcube:webmail",),
    ("Embedthis", "GoAhead"): ("embedthis:goahead",),
    ("Webmin", "Webmin"): ("webmin:webmin",),
    ("Grafana Labs", "Grafana"): ("grafana:grafana",),
    ("Microsoft", "SQL Server"): ("microsoft:sql_server",),
    ("Elastic", "Elasticsearch"): ("elastic:elasticsearch",),
    ("Elastic", "Kibana"): ("elastic:kibana",),
    ("Apache", "ActiveMQ"): ("apache:activemq",),
    ("Samba", "Samba"): ("samba:samba",),
    ("Apache", "CouchDB"): ("apache:couchdb",),
    ("SolarWinds", "Serv-U"): ("solarwinds:serv-u",),
    # the servers GitHub's reviewed advisory gives ranges for; not nginx: nginx.org's
    # security advisories do not list CVE-2023-44487, so no upstream range can be written
    ("IETF", "HTTP/2"): ("eclipse:jetty", "apache:tomcat"),
}

# KEV products that a fingerprint names only through something else, and why the catalog
# holds none of their CVEs.
NOT_NAMEABLE: dict[tuple[str, str], str] = {
    ("Microsoft", "Windows"): "fingerprints name Windows (SMB, RDP, HTTPAPI, LDAP) without "
                              "a build or patch level, and NVD lists Windows by build",
    ("WordPress", "File Manager Plugin"): "a WordPress plugin: its version is not WordPress's",
    ("WordPress", "Snap Creek Duplicator Plugin"): "a WordPress plugin",
    ("WordPress", "Social Warfare Plugin"): "a WordPress plugin",
    ("Jenkins", "Matrix Project Plugin"): "a Jenkins plugin: its version is not Jenkins's",
    ("Jenkins", "Script Security Plugin"): "a Jenkins plugin",
    ("Laravel", "Ignition"): "facade/ignition, a package Laravel pulls in, has its own versions",
    ("Redis", "Debian-specific Redis Servers"): "Debian's packaging, not an upstream Redis "
                                                "version: a distribution statement, not a range",
}

# CVEs of mapped products that the catalog leaves out, and why.
LEFT_OUT: dict[str, str] = {
    "CVE-2020-0618": "SQL Server Reporting Services, named by service pack (2012 SP4, 2014 SP3, "
                     "2016 SP2), not by the build number the TDS pre-login gives",
}

# KEV products a fingerprint or web technology names, but never with a version: no rule or
# technology of theirs reads one, and the matcher looks a product up by its version, so an
# entry of theirs could never match. Their CVEs wait for a rule that reads the version.
VERSION_UNSEEN: dict[tuple[str, str], tuple[str, str]] = {
    ("phpMyAdmin", "phpMyAdmin"): (
        "phpmyadmin:phpmyadmin",
        "known by its login page's title and its cookies, neither of which carries a version"),
    ("MinIO", "MinIO"): ("minio:minio", "known by its 'Server: MinIO' header, which carries no version"),
    ("Rails", "Ruby on Rails"): (
        "rubyonrails:rails",
        "known by the authenticity_token csrf-param and Passenger's header: no Rails version"),
    ("Laravel", "Laravel Framework"): (
        "laravel:framework", "known by the cookie the framework sets, which carries no version"),
    ("MikroTik", "RouterOS"): (
        "mikrotik:routeros", "known by its sshd's ROSSSH greeting, which carries no RouterOS version"),
    ("Microsoft", "Exchange Server"): (
        "microsoft:exchange_server",
        "the SMTP, IMAP and POP3 greetings carry no build, and no web technology reads the build in "
        "OWA's resource paths; NVD names the affected builds by cumulative update, not by build"),
    ("Microsoft", "Exchange"): ("microsoft:exchange_server", "as Exchange Server (CVE-2021-42321)"),
}


@cache
def kev() -> dict[str, Any]:
    with gzip.open(KEV_FILE, "rt", encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def kev_records() -> list[dict[str, Any]]:
    return list(kev()["vulnerabilities"])


@cache
def builtin_entries() -> tuple[Entry, ...]:
    return builtin_part().entries


@cache
def nameable() -> dict[str, tuple[str, str]]:
    """Product key → (vendor, product) as the CPE of a fingerprint rule or web technology
    spells it: what the matcher looks a fingerprinted product up by."""
    data = builtin_path().parent
    cpes = [r.get("cpe") for r in yaml.safe_load((data / "fingerprints.yaml").read_text())["rules"]]
    cpes += [t.get("cpe") for t in yaml.safe_load((data / "webapps.yaml").read_text())["technologies"]]
    names: dict[str, tuple[str, str]] = {}
    for cpe in filter(None, cpes):
        parsed = parse_cpe(re.sub(r"\{\w+\}", "*", cpe))
        if parsed:
            names.setdefault(product_key(parsed[0], parsed[1]), (parsed[0], parsed[1]))
    return names


def kev_cves_of_named_products() -> Iterator[tuple[str, str]]:
    """(CVE id, catalog product key) of every KEV CVE of a mapped product."""
    for record in kev_records():
        for key in KEV_PRODUCTS.get((record["vendorProject"], record["product"]), ()):
            yield record["cveID"], key


def test_the_kev_file_is_cisas_catalog_whole() -> None:
    data = kev()
    assert data["title"] == "CISA Catalog of Known Exploited Vulnerabilities"
    assert data["count"] == len(data["vulnerabilities"]) > 1000
    assert all(re.fullmatch(r"CVE-\d{4}-\d{4,}", r["cveID"]) for r in data["vulnerabilities"])


def test_every_mapped_kev_product_is_in_the_kev_file() -> None:
    # a renamed product in a newer KEV file must not silently drop its CVEs from the check
    names = {(r["vendorProject"], r["product"]) for r in kev_records()}
    assert set(KEV_PRODUCTS) - names == set()
    assert set(NOT_NAMEABLE) - names == set()
    assert set(VERSION_UNSEEN) - names == set()


def test_version_unseen_products_are_nameable_and_not_also_mapped() -> None:
    assert {key for key, _ in VERSION_UNSEEN.values()} - set(nameable()) == set()
    assert set(VERSION_UNSEEN) & (set(KEV_PRODUCTS) | set(NOT_NAMEABLE)) == set()
    keys = {key for key, _ in VERSION_UNSEEN.values()}
    assert sorted(e.id for e in builtin_entries() if e.product in keys) == [], "entries no rule reaches"


@cache
def versioned() -> frozenset[str]:
    """Product keys of the fingerprint rules and web technologies that read a version."""
    keys = set()
    for rule in load_fingerprints().rules:
        parsed = parse_cpe(re.sub(r"\{\w+\}", "*", rule.cpe)) if rule.cpe else None
        if parsed and rule.version is not None:
            keys.add(product_key(parsed[0], parsed[1]))
    for tech in load_web_catalog().technologies:
        parsed = parse_cpe(re.sub(r"\{\w+\}", "*", tech.cpe)) if tech.cpe else None
        if parsed and any(m.version is not None for m in tech.matchers):
            keys.add(product_key(parsed[0], parsed[1]))
    return frozenset(keys)


def test_version_unseen_products_have_no_rule_that_reads_a_version() -> None:
    # a rule that reads one makes the exclusion stale: write the product's entries then
    stale = sorted(key for key, _ in VERSION_UNSEEN.values() if key in versioned())
    assert stale == [], "a fingerprint now reads their version: move them to KEV_PRODUCTS"
    # the check itself sees versions where the rules read them
    assert {"samba:samba", "elastic:kibana", "apache:activemq"} <= versioned()


# Mapped products whose entries were written though no built-in rule reads their version
# yet: only a user's own fingerprint or web-technology catalog that reads it reaches them.
UNVERSIONED_MAPPED = frozenset({"gitlab:gitlab", "joomla:joomla!", "openbsd:opensmtpd",
                                "roundcube:webmail"})


def test_mapped_products_have_a_rule_that_reads_their_version_but_the_known_few() -> None:
    unseen = {k for keys in KEV_PRODUCTS.values() for k in keys} - versioned()
    # a new product here would have entries no built-in rule can reach; one that left the
    # list has a rule now, and the list must say so
    assert unseen == UNVERSIONED_MAPPED


def test_every_mapped_product_key_is_one_a_fingerprint_or_web_technology_names() -> None:
    keys = {k for keys in KEV_PRODUCTS.values() for k in keys}
    assert keys - set(nameable()) == set(), "not how fingerprints.yaml or webapps.yaml spell it"


def test_every_kev_cve_of_a_named_product_is_in_the_builtin_catalog() -> None:
    entries = {(e.id, e.product): e for e in builtin_entries()}
    missing = sorted(f"{cve} ({key})" for cve, key in kev_cves_of_named_products()
                     if cve not in LEFT_OUT and (cve, key) not in entries)
    assert missing == [], "KEV CVEs of named products missing from the built-in catalog"


def test_every_kev_cve_of_a_named_product_in_the_builtin_catalog_is_flagged_kev() -> None:
    entries = {(e.id, e.product): e for e in builtin_entries()}
    unflagged = sorted(f"{cve} ({key}, {entries[cve, key].source})"
                       for cve, key in kev_cves_of_named_products()
                       if (cve, key) in entries and not entries[cve, key].kev)
    assert unflagged == [], "in the built-in catalog without kev: true"


def test_left_out_cves_are_kev_cves_of_named_products_and_really_left_out() -> None:
    cves = {cve for cve, _ in kev_cves_of_named_products()}
    assert set(LEFT_OUT) <= cves
    assert {e.id for e in builtin_entries()} & set(LEFT_OUT) == set()


def test_every_builtin_entry_flagged_kev_is_in_the_kev_file_under_its_product() -> None:
    products: dict[str, set[str]] = {}
    for cve, key in kev_cves_of_named_products():
        products.setdefault(cve, set()).add(key)
    wrong = sorted(f"{e.id} ({e.product})" for e in builtin_entries()
                   if e.kev and e.product not in products.get(e.id, set()))
    assert wrong == [], "flagged kev, but not a KEV CVE of that product"
    assert load_catalog().kev == {e.id for e in builtin_entries() if e.kev}


def version_inside(entry: Entry) -> str:
    """A version the entry's first range or exact version covers: an exact version, an
    inclusive bound, else (an open lower bound) the lowest version there is."""
    if entry.versions:
        return entry.versions[0]
    r = entry.ranges[0]
    if r.start is not None and r.start_inclusive:
        return r.start
    if r.end is not None and r.end_inclusive:
        return r.end
    assert r.start is None, f"{entry.id}: write its first range with an inclusive bound"
    return "0"


@pytest.mark.parametrize("entry", [e for e in builtin_entries() if e.kev],
                         ids=lambda e: f"{e.id}-{e.product}")
def test_the_matchers_lookup_finds_each_kev_entry_inside_its_range(entry: Entry) -> None:
    vendor, product = nameable()[entry.product]
    version = version_inside(entry)
    hits = [h.entry.id for h in load_catalog().find(vendor, product, version)]
    assert entry.id in hits, f"{vendor}:{product} {version}"
