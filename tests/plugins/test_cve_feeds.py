"""The feed readers of the CVE catalog: the Debian Security Tracker's JSON, OSV's
distribution ecosystems (Canonical's USN files, Debian's DSA and DEBIAN-CVE files,
Alpine's), CISA's KEV list, OSV zip exports, a directory of any mix, and the ``feeds``
catalog word; every malformed feed refused naming the file and the JSON path."""

from __future__ import annotations

import copy
import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pentora_plugins.cve import feeds, sources
from pentora_plugins.cve.catalog import CatalogError
from pentora_plugins.cve.fixes import DistroFix
from pentora_plugins.cve.sources import load_catalog, load_part, normalise_sources

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"


def fixture(name: str) -> Any:
    return json.loads((FEEDS / name).read_text(encoding="utf-8"))


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def said(fixes: tuple[DistroFix, ...] | list[DistroFix]) -> set[tuple[Any, ...]]:
    return {(f.cve, f.distribution, f.release, f.package, f.status, f.fixed) for f in fixes}


# -- the Debian Security Tracker -----------------------------------------------------------------


def test_debian_tracker_statements_per_release() -> None:
    part = load_part(FEEDS / "debian_tracker.json")
    assert not part.entries and not part.kev
    assert said(part.fixes) == {
        ("CVE-2024-6387", "debian", "12", "openssh", "fixed", "1:9.2p1-2+deb12u3"),
        ("CVE-2024-6387", "debian", "11", "openssh", "not-affected", None),  # fixed_version "0"
        ("CVE-2023-51767", "debian", "12", "openssh", "vulnerable", None),  # open
        ("CVE-2023-45145", "debian", "12", "redis", "fixed", "5:7.0.15-1~deb12u1"),
        ("CVE-2023-45145", "debian", "11", "redis", "fixed", "5:6.0.16-1+deb11u3"),
    }  # sid has no number, trixie's statement is undetermined, TEMP- ids name no CVE
    regre = next(f for f in part.fixes if f.cve == "CVE-2024-6387" and f.release == "12")
    assert regre.advisory == "https://security-tracker.debian.org/tracker/CVE-2024-6387"
    assert regre.severity == "high" and regre.title.startswith("A security regression")
    assert regre.source == "debian_tracker.json"
    assert regre.covers("1:9.2p1-2+deb12u3") is True and regre.covers("1:9.2p1-2+deb12u2") is False
    rowhammer = next(f for f in part.fixes if f.cve == "CVE-2023-51767")
    assert rowhammer.severity == "low"  # unimportant


def test_debian_tracker_statements_reach_the_catalog(tmp_path: Path) -> None:
    catalog = load_catalog(["builtin", str(FEEDS / "debian_tracker.json")])
    fix = catalog.fixes.get("debian", "12", "redis", "CVE-2023-45145")
    assert fix is not None and fix.fixed == "5:7.0.15-1~deb12u1"


TRACKER_BROKEN = [
    (["openssh", "CVE-2024-6387", "releases", "bookworm", "status"], "fixed-ish",
     "$.openssh.CVE-2024-6387.releases.bookworm.status: expected one of resolved, open, undetermined"),
    (["openssh", "CVE-2024-6387", "releases", "bookworm", "fixed_version"], "1:9.2p1 rm -rf",
     "$.openssh.CVE-2024-6387.releases.bookworm.fixed_version: '1:9.2p1 rm -rf' is not a valid "
     "Debian version"),
    (["openssh", "CVE-2024-6387", "releases", "bookworm", "fixed_version"], None,
     "$.openssh.CVE-2024-6387.releases.bookworm.fixed_version: missing required field"),
    (["openssh", "CVE-2024-6387", "releases"], [], "$.openssh.CVE-2024-6387.releases: expected an "
                                                   "object, got list"),
    (["openssh", "CVE-2024-6387", "description"], 7, "$.openssh.CVE-2024-6387.description: expected "
                                                     "a string"),
]


@pytest.mark.parametrize("where,value,message", TRACKER_BROKEN)
def test_a_malformed_tracker_file_is_refused_naming_the_path(tmp_path: Path, where: list[str],
                                                             value: Any, message: str) -> None:
    data = fixture("debian_tracker.json")
    node = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path = write(tmp_path / "tracker.json", data)
    with pytest.raises(CatalogError) as e:
        load_part(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)


def test_a_tracker_package_name_that_is_no_package_name_is_refused(tmp_path: Path) -> None:
    data = fixture("debian_tracker.json")
    data["open ssh; rm -rf /"] = data.pop("redis")
    with pytest.raises(CatalogError, match=r"Debian source package name"):
        load_part(write(tmp_path / "tracker.json", data))


# -- OSV distribution ecosystems ----------------------------------------------------------------


def test_ubuntu_usn_cves_come_from_upstream_and_a_release_wins_over_its_pro_twin() -> None:
    part = load_part(FEEDS / "osv_usn.json")
    assert not part.entries  # an Ubuntu package version means nothing against upstream's
    assert said(part.fixes) == {
        ("CVE-2024-6387", "ubuntu", "22.04", "openssh", "fixed", "1:8.9p1-3ubuntu0.10"),
        ("CVE-2024-6387", "ubuntu", "24.04", "openssh", "fixed", "1:9.6p1-3ubuntu13.3"),
    }
    assert {f.advisory for f in part.fixes} == {"USN-6859-1"}
    assert all(f.title == "openssh vulnerability" for f in part.fixes)


def test_ubuntu_pro_only_release_is_kept_and_says_so(tmp_path: Path) -> None:
    usn = fixture("osv_usn.json")
    usn["affected"] = [a for a in usn["affected"] if a["package"]["ecosystem"].startswith("Ubuntu:Pro")]
    (fix,) = load_part(write(tmp_path / "usn.json", usn)).fixes
    assert (fix.release, fix.fixed) == ("22.04", "1:8.9p1-3ubuntu0.10+esm1")
    assert fix.advisory == "USN-6859-1 (Ubuntu Pro)"


def test_debian_dsa_and_debian_cve_files() -> None:
    assert said(load_part(FEEDS / "osv_dsa.json").fixes) == {
        ("CVE-2024-6387", "debian", "12", "openssh", "fixed", "1:9.2p1-2+deb12u3")}
    (fix,) = load_part(FEEDS / "osv_debian_cve.json").fixes
    assert (fix.cve, fix.status, fix.fixed, fix.advisory) == (
        "CVE-2023-51767", "vulnerable", None, "DEBIAN-CVE-2023-51767")  # no fixed event
    assert fix.severity == "low"  # Debian's urgency "unimportant"


def test_alpine_release_from_its_v_prefix_and_apk_versions() -> None:
    part = load_part(FEEDS / "osv_alpine.json")
    assert said(part.fixes) == {
        ("CVE-2024-6387", "alpine", "3.19", "openssh", "fixed", "9.6_p1-r1"),
        ("CVE-2024-6387", "alpine", "3.20", "openssh", "fixed", "9.7_p1-r4")}
    fix = next(f for f in part.fixes if f.release == "3.20")
    assert fix.covers("9.7_p1-r4") is True and fix.covers("9.7_p1-r3") is False


@pytest.mark.parametrize("ecosystem,expected", [
    ("AlmaLinux:9", ("rhel", "9")),
    ("Rocky Linux:8", ("rhel", "8")),
    ("Red Hat:enterprise_linux:9::appstream", ("rhel", "9")),
    ("Red Hat:rhel_eus:9.2::baseos", ("rhel", "9")),
    ("Debian:11", ("debian", "11")),
    ("Ubuntu:Pro:FIPS-updates:20.04:LTS", ("ubuntu", "20.04")),
    ("Red Hat:openshift:4.14::el9", None),  # not RHEL's packages
    ("SUSE:Linux Enterprise Server 15 SP5", None),  # a distribution pentora cannot name
    ("Mageia:9", None),
])
def test_distribution_ecosystems(tmp_path: Path, ecosystem: str, expected: tuple[str, str] | None) -> None:
    adv = {"id": "RLSA-2024:4312", "aliases": ["CVE-2024-6387"],
           "affected": [{"package": {"ecosystem": ecosystem, "name": "openssh"},
                         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                                     {"fixed": "8.7p1-38.1"}]}]}]}
    part = load_part(write(tmp_path / "adv.json", adv))
    assert not part.entries  # neither an entry: a distribution's version is no upstream one
    assert [f.key[:2] for f in part.fixes] == ([expected] if expected else [])


def test_upstream_ecosystems_keep_giving_entries(tmp_path: Path) -> None:
    def fixed_in(version: str) -> list[dict[str, Any]]:
        return [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": version}]}]

    adv = {"id": "GHSA-xxxx-yyyy-zzzz", "aliases": ["CVE-2024-1234"],
           "affected": [{"package": {"ecosystem": "PyPI", "name": "redis"}, "ranges": fixed_in("5.0.1")},
                        {"package": {"ecosystem": "Debian:12", "name": "python-redis"},
                         "ranges": fixed_in("4.3.4-3+deb12u1")}]}
    part = load_part(write(tmp_path / "ghsa.json", adv))
    (entry,) = part.entries
    assert (entry.id, entry.product) == ("CVE-2024-1234", "*:redis")
    assert said(part.fixes) == {("CVE-2024-1234", "debian", "12", "python-redis", "fixed", "4.3.4-3+deb12u1")}


OSV_DISTRO_BROKEN = [
    (["affected", 0, "ranges", 0, "events", 1, "fixed"], "1:9.2p1-2+deb12u3; reboot",
     "$.affected[0].ranges[0].events[1].fixed: '1:9.2p1-2+deb12u3; reboot' is not a valid deb version"),
    (["affected", 0, "package", "name"], "../../etc/passwd",
     "$.affected[0].package.name: expected a source package name"),
    (["affected", 0, "package", "ecosystem"], "Debian:bookworm",
     "$.affected[0].package.ecosystem: 'Debian:bookworm': expected a release number"),
    (["upstream", 0], 12, "$.upstream[0]: expected a string, got int"),
]


@pytest.mark.parametrize("where,value,message", OSV_DISTRO_BROKEN)
def test_a_malformed_distribution_advisory_is_refused_naming_the_path(
        tmp_path: Path, where: list[Any], value: Any, message: str) -> None:
    data = copy.deepcopy(fixture("osv_dsa.json"))
    node = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path = write(tmp_path / "dsa.json", data)
    with pytest.raises(CatalogError) as e:
        load_part(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)


# -- CISA KEV -------------------------------------------------------------------------------------


def test_kev_gives_ids_and_is_not_taken_for_nvd() -> None:
    part = load_part(FEEDS / "kev.json")
    assert part.kev == {"CVE-2024-6387", "CVE-2023-38408", "CVE-2021-44228"}
    assert not part.entries and not part.fixes
    catalog = load_catalog(["builtin", str(FEEDS / "kev.json")])
    assert "CVE-2024-6387" in catalog.kev


def test_kev_without_catalog_version_is_still_kev(tmp_path: Path) -> None:
    data = fixture("kev.json")
    del data["catalogVersion"]
    assert len(load_part(write(tmp_path / "kev.json", data)).kev) == 3


@pytest.mark.parametrize("value,message", [
    ("CVE-2024-6387; DROP", "$.vulnerabilities[1].cveID: expected a CVE id"),
    (None, "$.vulnerabilities[1].cveID: missing required field"),
])
def test_a_malformed_kev_item_is_refused(tmp_path: Path, value: Any, message: str) -> None:
    data = fixture("kev.json")
    data["vulnerabilities"][1]["cveID"] = value
    path = write(tmp_path / "kev.json", data)
    with pytest.raises(CatalogError) as e:
        load_part(path)
    assert str(e.value).startswith(f"{path}: {message}"), str(e.value)


# -- zips, directories, the feeds word ------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_an_osv_zip_export_is_read_member_by_member(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "all.zip", {
        name: (FEEDS / name).read_bytes() for name in ("osv_usn.json", "osv_dsa.json", "osv_alpine.json")})
    part = load_part(archive)
    assert {f.distribution for f in part.fixes} == {"ubuntu", "debian", "alpine"} and len(part.fixes) == 5


def test_a_broken_zip_member_is_named(tmp_path: Path) -> None:
    broken = fixture("osv_dsa.json")
    broken["affected"][0]["ranges"][0]["events"][1]["fixed"] = "not a version!"
    archive = make_zip(tmp_path / "all.zip", {"a.json": (FEEDS / "osv_usn.json").read_bytes(),
                                              "DSA-5724-1.json": json.dumps(broken).encode()})
    with pytest.raises(CatalogError, match=rf"{archive}:DSA-5724-1.json: \$.affected\[0\]"):
        load_part(archive)


def test_a_zip_bomb_member_is_refused_by_what_it_inflates_to(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MEMBER_MAX_BYTES", 1 << 20)
    archive = make_zip(tmp_path / "all.zip", {"bomb.json": b" " * (4 << 20)})
    assert archive.stat().st_size < 64 * 1024
    with pytest.raises(CatalogError, match="over the 1048576-byte limit for one advisory"):
        load_part(archive)


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "all.zip", {"a.json": (FEEDS / "osv_usn.json").read_bytes()})
    raw = archive.read_bytes()
    archive.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(CatalogError, match="not a valid zip file"):
        load_part(archive)


def test_a_directory_of_any_mix(tmp_path: Path) -> None:
    (tmp_path / "kev.json.gz").write_bytes(gzip.compress((FEEDS / "kev.json").read_bytes()))
    (tmp_path / "tracker.json").write_bytes((FEEDS / "debian_tracker.json").read_bytes())
    make_zip(tmp_path / "ubuntu.zip", {"USN-6859-1.json": (FEEDS / "osv_usn.json").read_bytes()})
    (tmp_path / "notes.txt").write_text("not read", encoding="utf-8")
    catalog = load_catalog([str(tmp_path)])
    assert len(catalog.kev) == 3 and len(catalog.fixes) == 7


def test_the_feeds_word_reads_the_cache_that_update_wrote(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalise_sources(["builtin", "feeds"]) == ["builtin", "feeds"]
    monkeypatch.setenv(feeds.ENV_DIR, str(tmp_path / "cache"))
    assert feeds.cache_dir() == tmp_path / "cache"
    empty = load_catalog(["feeds"])  # never updated: nothing, and no error
    assert (len(empty), len(empty.fixes), len(empty.kev)) == (0, 0, 0)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "kev.json").write_bytes((FEEDS / "kev.json").read_bytes())
    (tmp_path / "cache" / "stray.json").write_bytes((FEEDS / "debian_tracker.json").read_bytes())
    feeds.write_state(tmp_path / "cache", {"kev": {"file": "kev.json", "url": "http://127.0.0.1/kev"}})
    catalog, builtin = load_catalog(["builtin", "feeds"]), load_catalog(["builtin"])
    listed = {v["cveID"] for v in json.loads((FEEDS / "kev.json").read_text())["vulnerabilities"]}
    assert len(listed) == 3 and catalog.kev == builtin.kev | listed
    assert len(catalog.fixes) == len(builtin.fixes)  # the stray file is not the cache's


def test_the_cache_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(feeds.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert feeds.cache_dir() == tmp_path / "pentora" / "feeds"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert feeds.cache_dir() == Path.home() / ".cache" / "pentora" / "feeds"
    assert feeds.cache_dir("/elsewhere") == Path("/elsewhere")


def test_a_damaged_state_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(feeds.ENV_DIR, str(tmp_path))
    (tmp_path / "state.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"state.json: expected \{FEED"):
        load_catalog(["feeds"])
