"""The built-in catalog's data against ground truth from outside the code: the changelogs of
the Debian packages installed on this machine, and what the catalog's own fields promise
(every entry has a role; client flaws are exactly those of client programs)."""

from __future__ import annotations

import copy
import gzip
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from debian.changelog import Changelog
from pentora_plugins.cve.builtin import builtin_part, builtin_paths, yaml_part
from pentora_plugins.cve.catalog import ROLES, CatalogError, Entry
from pentora_plugins.cve.doc import Doc
from pentora_plugins.cve.fixes import DistroFix
from pentora_plugins.cve.version import upstream, version_key

RELEASES = ("debian/12", "debian/11", "ubuntu/22.04", "ubuntu/24.04")
# The programs a host runs towards others. A flaw in one of them is role client (a scan of
# the host's server must never report it); everything else the catalog names is a server
# part (sshd, a module, the SSH transport both ends share) or a library.
CLIENT_PROGRAMS = frozenset({"ssh", "ssh-agent", "ssh-add", "ssh-keygen", "scp", "sftp"})


def raw_entries() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in builtin_paths():
        out += yaml.safe_load(path.read_text(encoding="utf-8"))["entries"]
    return out


ENTRIES = raw_entries()
PART = builtin_part()


# -- the catalog's own promises ---------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e['id']}-{e['product']}")
def test_every_builtin_entry_states_its_role_and_component(entry: dict[str, Any]) -> None:
    # 'any' is what NVD and OSV records get; a curated entry says where the flaw is
    assert entry.get("role") in set(ROLES) - {"any"}, entry["id"]
    assert isinstance(entry.get("component"), str) and entry["component"], entry["id"]


def test_client_role_is_exactly_a_client_program_component() -> None:
    clients = {(e["id"], e["component"]) for e in ENTRIES if e["role"] == "client"}
    programs = {(e["id"], e["component"]) for e in ENTRIES if e["component"] in CLIENT_PROGRAMS}
    assert clients == programs
    # the entries this distinction exists for (ssh-agent, the ssh client) are among them
    assert {"CVE-2023-38408", "CVE-2023-51385", "CVE-2025-26465"} <= {i for i, _ in clients}
    terrapin = next(e for e in ENTRIES if e["id"] == "CVE-2023-48795")
    assert terrapin["role"] == "server"


def test_every_distros_statement_parses_and_is_kept() -> None:
    stated = sum(len(e.get("distros", {})) for e in ENTRIES)
    assert stated == len(PART.fixes) > 100
    for fix in PART.fixes:
        assert f"{fix.distribution}/{fix.release}" in RELEASES, fix
        assert fix.advisory, fix
        assert fix.fixed is not None or fix.status != "fixed", fix


def test_every_debian_12_statement_names_a_release_version_or_says_not_affected() -> None:
    debian12 = [f for f in PART.fixes if (f.distribution, f.release) == ("debian", "12")]
    # entries of products Debian does not ship in bookworm (MySQL) and the few with no
    # source are left out, never guessed: most entries have a statement
    assert len(debian12) >= 55


def test_kev_flags_are_those_of_the_catalog() -> None:
    assert {"CVE-2021-41773", "CVE-2021-42013", "CVE-2019-10149"} <= PART.kev
    assert "CVE-2024-6387" not in PART.kev


@pytest.mark.parametrize(("key", "value", "message"), [
    ("debian12", {"package": "openssh", "fixed": "1:9.2p1-2+deb12u3", "advisory": "DSA-5724-1"},
     "$.entries[0].distros.debian12: expected DISTRIBUTION/RELEASE such as debian/12"),
    # a codename (or any word) would never match a host's release number
    ("debian/bookworm", {"package": "openssh", "fixed": "1:9.2p1-2+deb12u3", "advisory": "DSA-5724-1"},
     "$.entries[0].distros.debian/bookworm: a release is its number, not its codename: debian/12 "
     "for bookworm"),
    ("ubuntu/jammy", {"package": "openssh", "status": "vulnerable", "advisory": "USN-6859-1"},
     "$.entries[0].distros.ubuntu/jammy: a release is its number, not its codename: ubuntu/22.04"),
    ("debian/latest", {"package": "openssh", "status": "vulnerable", "advisory": "DSA-5724-1"},
     "$.entries[0].distros.debian/latest: expected a release number such as debian/12"),
    ("debian/12", {"package": "openssh", "fixed": "9.2p1 patched", "advisory": "DSA-5724-1"},
     "$.entries[0].distros.debian/12.fixed: '9.2p1 patched' is not a valid deb version"),
    ("debian/12", {"package": "openssh", "status": "not-affected", "fixed": "1:9.2p1-2",
                   "advisory": "DSA-5724-1"},
     "$.entries[0].distros.debian/12: 'fixed: VERSION' goes with status fixed, and only with it"),
    ("ubuntu/22.04", {"package": "openssh", "status": "patched", "advisory": "USN-6859-1"},
     "$.entries[0].distros.ubuntu/22.04.status: expected one of fixed, not-affected, vulnerable"),
])
def test_a_bad_distros_statement_is_refused_naming_the_entry(key: str, value: dict[str, Any],
                                                              message: str) -> None:
    entry = copy.deepcopy(next(e for e in ENTRIES if e["id"] == "CVE-2024-6387"))
    entry["distros"] = {key: value}
    with pytest.raises(CatalogError) as e:
        yaml_part({"entries": [entry]}, Doc("catalog mine.yaml"), "mine.yaml")
    text = str(e.value)
    assert text.startswith("catalog mine.yaml: "), text
    assert message in text
    assert text.endswith("(entry CVE-2024-6387)"), text


# -- Debian 12 statements against the changelogs installed here ------------------------------


# Packages that conflict with the installed daemons (proftpd-core with vsftpd, postfix with
# exim4): .ci/setup downloads them and unpacks their changelog and control fields here.
DOWNLOADED = Path(__file__).resolve().parents[2] / ".ci" / "cache" / "doc"


@cache
def installed() -> dict[str, Path]:
    """Source package → the changelog of a binary package of it, installed here (from dpkg)
    or downloaded by .ci/setup."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Source} ${db:Status-Status}\\n"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"dpkg-query is not usable here ({e}): not a Debian system")
    by_source: dict[str, Path] = {}
    for line in out.splitlines():
        # ${Source} is empty when it equals the package, and carries "(VERSION)" after a
        # binary-only rebuild (vsftpd 3.0.3-13+b2 of source vsftpd 3.0.3-13)
        binary, *rest = line.split(" ")
        if rest[-1:] != ["installed"]:
            continue  # removed, its config files kept: no changelog
        source = (rest[0] if len(rest) > 1 and rest[0] else "") or binary
        doc = Path("/usr/share/doc") / binary / "changelog.Debian.gz"
        if doc.is_file():
            by_source.setdefault(source, doc)
    for control in sorted(DOWNLOADED.glob("*/control")):
        fields = dict(line.split(": ", 1) for line in control.read_text().splitlines() if ": " in line)
        source = fields.get("Source", fields.get("Package", "")).split(" ")[0]
        if source and (control.parent / "changelog.Debian.gz").is_file():
            by_source.setdefault(source, control.parent / "changelog.Debian.gz")
    return by_source


def debian_release() -> str | None:
    text = Path("/etc/os-release").read_text(encoding="utf-8") if Path("/etc/os-release").is_file() else ""
    m = re.search(r'^VERSION_ID="?([^"\n]+)', text, re.M)
    return m.group(1) if "ID=debian" in text and m else None


def affected(entry: Entry, version: str) -> bool:
    key = version_key(upstream(version))
    return any(r.contains(key) for r in entry.ranges) or any(
        version_key(v) == key for v in entry.versions)


def names(block: Any, cve: str) -> bool:
    return re.search(re.escape(cve) + r"(?!\d)", "\n".join(block.changes())) is not None


def debian_12_cases() -> list[tuple[Entry, DistroFix]]:
    """Each entry with its bookworm statement (one CVE id may name entries of two products)."""
    cases = []
    for raw in ENTRIES:
        part = yaml_part({"entries": [raw]}, Doc("builtin"), "builtin")
        cases += [(part.entries[0], f) for f in part.fixes
                  if (f.distribution, f.release) == ("debian", "12")]
    return cases


@pytest.mark.parametrize(("entry", "fix"), debian_12_cases(),
                         ids=lambda c: f"{c.id}-{c.product}" if isinstance(c, Entry) else c.package)
def test_debian_12_statement_agrees_with_the_installed_changelog(entry: Entry,
                                                                 fix: DistroFix) -> None:
    if debian_release() != "12":
        pytest.skip(f"this machine is not Debian 12 (VERSION_ID {debian_release()}): its "
                    f"changelogs say nothing of bookworm's {fix.package}")
    if fix.package not in installed():
        pytest.skip(f"source package {fix.package} is not installed here: no changelog of "
                    f"it to compare (.ci/setup installs or downloads the ones the suite reads)")
    path = installed()[fix.package]
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        blocks = list(Changelog(f, strict=False))  # newest first
    versions = [str(b.version) for b in blocks]
    # bookworm's own uploads; the entry below the oldest of them is what bookworm shipped
    # at release (entries below that are its history in sid; entries above that are not
    # bookworm's are sid uploads a rebuild for bookworm brought in)
    ours = [i for i, b in enumerate(blocks) if "bookworm" in b.distributions]
    shipped = max(ours) + 1 if ours else 0
    naming = [i for i, b in enumerate(blocks) if names(b, fix.cve)]
    if fix.status == "not-affected":
        # never had the flaw: the upstream version bookworm shipped is outside the
        # advisory's ranges, and no bookworm upload says it fixed the CVE
        assert not affected(entry, versions[shipped]), (fix.cve, versions[shipped])
        assert not [versions[i] for i in naming if i in ours], fix.cve
        return
    assert fix.status == "fixed" and fix.fixed is not None
    if not naming:
        # a fix whose changelog entry does not name the CVE (regreSSHion's 1:9.2p1-2+deb12u3,
        # "Disable async-signal-unsafe code from the sshsigdie() function"): the version
        # must at least be one of bookworm's own uploads, and the release must have been
        # affected
        assert fix.fixed in [versions[i] for i in ours], (fix.cve, fix.fixed)
        assert affected(entry, versions[shipped]), fix.cve
        return
    first = max(naming)
    if first < shipped and first not in ours:
        first = max(i for i in ours if i < first)  # the bookworm rebuild that brought it
    assert fix.fixed == versions[first], (fix.cve, fix.fixed, versions[first])
