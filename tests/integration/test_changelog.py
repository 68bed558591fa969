"""The changelog reader of the patched-daemon tests (``changelog.py``): on a real excerpt, on
the corners of deb-changelog(5), and against ``dpkg-parsechangelog`` on the changelogs the
daemons' packages installed."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from . import changelog, daemons

# From Debian's openssh changelog (bookworm), verbatim: a CVE named in an entry's first
# line, one in brackets, and regreSSHion's fix, whose entry names no CVE; then the comment
# dh_installchangelogs leaves where it trimmed older entries.
EXCERPT = """\
openssh (1:9.2p1-2+deb12u5) bookworm-security; urgency=medium

  * CVE-2025-26465: Fix MitM in verify_host_key_callback.
  * Fix incorrect return values on a number of error paths.

 -- Colin Watson <cjwatson@debian.org>  Fri, 14 Feb 2025 13:06:51 +0000

openssh (1:9.2p1-2+deb12u3) bookworm-security; urgency=high

  * Non-maintainer upload by the Security Team.
  * Disable async-signal-unsafe code from the sshsigdie() function

 -- Salvatore Bonaccorso <carnil@debian.org>  Sat, 22 Jun 2024 21:38:08 +0200

openssh (1:9.2p1-2+deb12u1) bookworm; urgency=medium

  * Cherry-pick from OpenSSH 9.3p2:
    - [CVE-2023-38408] Fix a condition where specific libraries loaded via
      ssh-agent(1)'s PKCS#11 support could be abused to achieve remote code
      execution via a forwarded agent socket (closes: #1042460).

 -- Colin Watson <cjwatson@debian.org>  Sat, 23 Sep 2023 23:11:33 +0100

# Older entries have been removed from this changelog.
# To read the complete changelog use `apt changelog openssh-client`.
"""


def test_real_excerpt_is_split_into_its_entries() -> None:
    entries = changelog.parse(EXCERPT)
    assert [(e.source, e.version, e.distributions) for e in entries] == [
        ("openssh", "1:9.2p1-2+deb12u5", ("bookworm-security",)),
        ("openssh", "1:9.2p1-2+deb12u3", ("bookworm-security",)),
        ("openssh", "1:9.2p1-2+deb12u1", ("bookworm",))]
    assert [set(e.cves) for e in entries] == [{"CVE-2025-26465"}, set(), {"CVE-2023-38408"}]
    assert entries[1].body == ("  * Non-maintainer upload by the Security Team.\n"
                               "  * Disable async-signal-unsafe code from the sshsigdie() function")
    assert not any("Older entries" in e.body or "Colin Watson" in e.body for e in entries)


def test_header_forms_and_lines_outside_entries() -> None:
    text = ("nginx (1.22.1-9+deb12u3) bookworm-security; urgency=medium\n"
            "\n"
            "  * Fix cve-2024-7347 (lower case, as some maintainers write it).\n"
            "  * Also CVE-2023-44487 and CVE-2022-41741, CVE-2022-41742.\n"
            "\n"
            " -- Jan Mojžíš <jan.mojzis@gmail.com>  Thu, 15 Aug 2024 07:56:06 +0200\n"
            "\n"
            "stray text CVE-2000-0001 between entries\n"
            "  indented text after the trailer CVE-2000-0002\n"
            "redis (5:7.0.11-1) unstable experimental; urgency=low\n"
            "  * No trailer before the next header: CVE-2023-28856\n"
            "redis (5:7.0.10-1)  unstable;urgency=high\n"
            "  * CVE-2023-28425\n"
            " -- Chris Lamb <lamby@debian.org>  Tue, 21 Mar 2023 09:46:18 -0700\n"
            "\n"
            "Local variables:\n"
            "redis (5:7.0.9-1) unstable; urgency=high\n"
            "  * after the Emacs block: not read, CVE-2000-0003\n")
    entries = changelog.parse(text)
    assert [(e.source, e.version, e.distributions, set(e.cves)) for e in entries] == [
        ("nginx", "1.22.1-9+deb12u3", ("bookworm-security",),
         {"CVE-2024-7347", "CVE-2023-44487", "CVE-2022-41741", "CVE-2022-41742"}),
        ("redis", "5:7.0.11-1", ("unstable", "experimental"), {"CVE-2023-28856"}),
        ("redis", "5:7.0.10-1", ("unstable",), {"CVE-2023-28425"})]


def test_not_a_header() -> None:
    for line in ("openssh 1:9.2p1-2 bookworm; urgency=medium",       # no parentheses
                 "openssh (1:9.2p1-2) bookworm urgency=medium",       # no semicolon
                 "openssh (1:9.2p1 -2) bookworm; urgency=medium",     # a blank in the version
                 " openssh (1:9.2p1-2) bookworm; urgency=medium"):    # indented: body text
        assert changelog.parse(f"{line}\n  * CVE-2024-6387\n") == [], line


def _install(doc: Path, binary: str, text: str, name: str = "changelog.Debian.gz") -> None:
    (doc / binary).mkdir(parents=True, exist_ok=True)
    (doc / binary / name).write_bytes(gzip.compress(text.encode()))


def test_fixed_cves_are_those_at_or_below_the_installed_version(tmp_path: Path) -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed: it orders the versions")
    _install(tmp_path, "openssh-client", EXCERPT)
    assert changelog.fixed_cves("openssh-client", "1:9.2p1-2+deb12u10", tmp_path) == {
        "CVE-2025-26465": "1:9.2p1-2+deb12u5", "CVE-2023-38408": "1:9.2p1-2+deb12u1"}
    # deb12u4 is above deb12u3 and below deb12u5, whatever the digits' text order says.
    assert changelog.fixed_cves("openssh-client", "1:9.2p1-2+deb12u4", tmp_path) == {
        "CVE-2023-38408": "1:9.2p1-2+deb12u1"}
    # Without the epoch the version is older than every entry.
    assert changelog.fixed_cves("openssh-client", "9.9p1-1", tmp_path) == {}
    assert changelog.fixed_cves("no-such-package", "1.0", tmp_path) == {}


def test_the_older_split_off_changelog_counts_and_the_first_fixing_revision_is_kept(tmp_path: Path) -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed: it orders the versions")
    current = ("exim4 (4.96-15+deb12u2) bookworm-security; urgency=high\n\n"
               "  * Follow-up fix for CVE-2023-42115.\n\n"
               " -- Andreas Metzler <ametzler@debian.org>  Sun, 01 Oct 2023 15:00:00 +0200\n")
    old = ("exim4 (4.94-1) unstable; urgency=medium\n\n  * Fix CVE-2023-42115 and CVE-2020-28007.\n\n"
           " -- Andreas Metzler <ametzler@debian.org>  Sat, 01 Jun 2020 15:00:00 +0200\n")
    _install(tmp_path, "exim4-base", current)
    _install(tmp_path, "exim4-base", old, "changelog.Debian.old.gz")
    assert changelog.fixed_cves("exim4-base", "4.96-15+deb12u2", tmp_path) == {
        "CVE-2023-42115": "4.94-1", "CVE-2020-28007": "4.94-1"}


def _dpkg_entries(path: Path) -> list[tuple[str, frozenset[str]]]:
    """(version, CVE ids of its changes) of every entry, as dpkg-parsechangelog reads the file."""
    done = subprocess.run(["dpkg-parsechangelog", "-l", str(path), "--all", "--format", "rfc822"],
                          capture_output=True, text=True, check=True, timeout=60)
    out = []
    for paragraph in done.stdout.split("\n\n"):
        fields = paragraph.split("\nChanges:\n", 1)
        version = next((line.split(": ", 1)[1] for line in fields[0].splitlines()
                        if line.startswith("Version: ")), None)
        if version is None:
            continue
        body = fields[1].split("\n", 1)[1] if len(fields) > 1 and "\n" in fields[1] else ""
        entry = changelog.Entry(source="", version=version, distributions=(), body=body)
        out.append((version, entry.cves))
    return out


def _installed_changelogs() -> list[str]:
    binaries = []
    for marker in daemons.PACKAGES.values():
        try:
            binaries.append(daemons.package_of(daemons._binary(marker)))
        except (daemons.DaemonError, subprocess.CalledProcessError, OSError):
            continue
    return sorted({b for b in binaries} | {"exim4-base"})


@pytest.mark.parametrize("binary", _installed_changelogs())
def test_agrees_with_dpkg_parsechangelog(binary: str) -> None:
    if shutil.which("dpkg-parsechangelog") is None:
        pytest.skip("dpkg-parsechangelog (dpkg-dev) is not installed: it is the reference reader")
    files = changelog.changelog_files(binary)
    if not files:
        pytest.skip(f"{binary} is not installed, or installed no changelog.Debian.gz")
    for path in files:
        ours = [(e.version, e.cves) for e in changelog.parse(gzip.decompress(path.read_bytes()).decode())]
        assert ours == _dpkg_entries(path), path
        assert ours, f"{path}: no entry read"
