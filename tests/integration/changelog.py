"""What a Debian package's own changelog says it fixed: the ground truth of the patched-daemon tests.

A Debian package keeps the upstream version while its maintainers backport fixes, and its
changelog (``/usr/share/doc/BINARY/changelog.Debian.gz``) names the CVEs each revision
fixed. Its format (deb-changelog(5)), one entry per revision, newest first::

    openssh (1:9.2p1-2+deb12u5) bookworm-security; urgency=medium

      * CVE-2025-26465: Fix MitM in verify_host_key_callback.

     -- Colin Watson <cjwatson@debian.org>  Fri, 14 Feb 2025 13:06:51 +0000

The header is ``SOURCE (VERSION) DISTRIBUTION...; KEY=VALUE...``; the body is every line
up to the trailer ``' -- '``, indented (blank lines included); a CVE id anywhere in the body
counts, whatever words surround it. Lines outside an entry (``# Older entries have been
removed``, an Emacs ``Local variables:`` block, a pre-1996 ``Old Changelog:``) belong to no
entry; the last two end the part dpkg parses, and end it here too. The patterns are dpkg's
own (``Dpkg::Changelog::Entry::Debian``), so that :func:`parse` splits a file as
``dpkg-parsechangelog --all`` does (``tests/integration/test_changelog.py`` holds it to that).

Versions are compared by dpkg itself (``dpkg --compare-versions``), not by the code under
test. What a changelog gives is a lower bound of what is fixed: an entry may fix a CVE
without naming it (Debian's regreSSHion upload, ``1:9.2p1-2+deb12u3``, says "Disable
async-signal-unsafe code from the sshsigdie() function"), and installed changelogs are
trimmed of their oldest entries.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DOC = Path("/usr/share/doc")

# dpkg's regex_header: source package, version, distributions, then the options.
HEADER = re.compile(r"^(\w[-+0-9a-z.]*) \(([^() \t]+)\)((?:\s+[-+0-9a-z.]+)+);(.*?)\s*$", re.I)
TRAILER = re.compile(r"^ -- ")
# Where dpkg stops reading: an Emacs/vim variables block, or the free-form old changelog.
END = re.compile(r"^(?:;;\s*)?Local variables:|^vim:|^Old Changelog:", re.I)
CVE = re.compile(r"\bCVE-(\d{4})-(\d{4,})\b", re.I)


@dataclass(frozen=True)
class Entry:
    """One revision of a Debian changelog: its header and the lines of its body."""

    source: str
    version: str
    distributions: tuple[str, ...]
    body: str

    @property
    def cves(self) -> frozenset[str]:
        """The CVE ids the body names, uppercased (``cve-2020-1234`` is written too)."""
        return frozenset(f"CVE-{year}-{number}" for year, number in CVE.findall(self.body))


def parse(text: str) -> list[Entry]:
    """The entries of a changelog, in file order; lines outside any entry are skipped."""
    entries: list[Entry] = []
    header: re.Match[str] | None = None
    body: list[str] = []

    def close() -> None:
        if header is not None:
            entries.append(Entry(source=header.group(1), version=header.group(2),
                                 distributions=tuple(header.group(3).split()),
                                 body="\n".join(body).strip("\n")))

    for line in text.splitlines():
        found = HEADER.match(line)
        if found:
            close()  # an entry whose trailer is missing still ends at the next header
            header, body = found, []
        elif END.match(line):
            break
        elif TRAILER.match(line):
            close()
            header, body = None, []
        elif header is not None and (not line.strip() or line[0] in " \t"):
            body.append(line)
    close()
    return entries


def changelog_files(binary: str, doc: Path = DOC) -> list[Path]:
    """The Debian changelogs a binary package installs: the current one, then the split-off
    older one some packages (exim4-base) keep beside it."""
    folder = doc / binary
    return [p for p in (folder / "changelog.Debian.gz", folder / "changelog.Debian.old.gz") if p.exists()]


def read_entries(binary: str, doc: Path = DOC) -> list[Entry]:
    """Every entry of the package's changelogs; [] when it installed none."""
    return [e for path in changelog_files(binary, doc)
            for e in parse(gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace"))]


def at_or_below(versions: list[str], ceiling: str) -> list[bool]:
    """Whether each version is at or below ``ceiling`` in dpkg's order, asked of dpkg (one
    shell for the lot). A version dpkg cannot parse is not counted (False)."""
    if shutil.which("dpkg") is None:
        raise RuntimeError("dpkg is not installed: it orders Debian versions for these tests")
    script = ('c="$1"; while IFS= read -r v; do if dpkg --compare-versions "$v" le "$c" 2>/dev/null; '
              'then echo 1; else echo 0; fi; done')
    done = subprocess.run(["sh", "-c", script, "sh", ceiling], input="".join(f"{v}\n" for v in versions),
                          capture_output=True, text=True, check=True, timeout=120)
    answers = done.stdout.split()
    assert len(answers) == len(versions), done.stderr
    return [a == "1" for a in answers]


def fixed_cves(binary: str, installed: str, doc: Path = DOC) -> dict[str, str]:
    """CVE id -> the earliest revision at or below ``installed`` whose entry names it, from the
    changelogs ``binary`` installed (under ``doc``)."""
    entries = read_entries(binary, doc)
    below = at_or_below([e.version for e in entries], installed)
    fixed: dict[str, str] = {}
    # Oldest first, so that a CVE named again later (a follow-up fix) keeps its first revision.
    for entry, counted in reversed(list(zip(entries, below, strict=True))):
        if counted:
            for cve in entry.cves:
                fixed.setdefault(cve, entry.version)
    return fixed
