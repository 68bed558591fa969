"""The Debian Security Tracker's JSON → what Debian says of each CVE in each release's package.

The feed (https://security-tracker.debian.org/tracker/data/json), by source package::

    {"openssh": {
       "CVE-2024-6387": {
         "description": "A security regression (CVE-2006-5051) was discovered in OpenSSH's ...",
         "scope": "remote",
         "releases": {
           "bookworm": {"status": "resolved", "fixed_version": "1:9.2p1-2+deb12u3",
                        "urgency": "high", "repositories": {"bookworm": "1:9.2p1-2+deb12u7"}},
           "bullseye": {"status": "resolved", "fixed_version": "0", "urgency": "not yet assigned",
                        "repositories": {...}},
           "sid": {...}}}}}

Each (package, CVE, release) gives one ``DistroFix`` for ``debian`` and the release number
``kit.distro``'s data gives the codename (bookworm → 12); codenames it does not number
(``sid``, ``experimental``) are skipped, as are ids that are not CVE ids (``TEMP-…``).
``resolved`` with ``fixed_version`` ``0`` is ``not-affected`` (the release never had the
flaw), ``resolved`` with a version is ``fixed`` in it, ``open`` is ``vulnerable``;
``undetermined`` says nothing and is skipped. The advisory is the tracker's page of the
CVE, the title its description, the severity its urgency (``high``, ``medium``, ``low``;
``unimportant`` is low; ``not yet assigned`` and ``end-of-life`` give none). Every name
and version is checked (a package name, a CVE id, a dpkg version): the feed is untrusted.
"""

from __future__ import annotations

from typing import Any

from pentora_plugins.cve.doc import Doc, one_line
from pentora_plugins.cve.fixes import CVE_ID, PACKAGE_NAME, SEVERITIES, DistroFix
from pentora_plugins.cve.nvd import TITLE_CHARS
from pentora_plugins.kit import distro, distver

TRACKER = "https://security-tracker.debian.org/tracker/"
STATUSES = ("resolved", "open", "undetermined")
_PROBE = 16  # packages looked at to recognise the format


def is_debian_tracker(data: Any) -> bool:
    """Whether ``data`` has the tracker's shape: packages → ids → records with ``releases``."""
    if not isinstance(data, dict) or not data or "vulnerabilities" in data or "id" in data:
        return False
    for _, records in zip(range(_PROBE), data.values(), strict=False):
        if isinstance(records, dict) and records:
            record = next(iter(records.values()))
            return isinstance(record, dict) and "releases" in record
    return False


def debian_fixes(data: dict[str, Any], doc: Doc, source: str) -> list[DistroFix]:
    releases = {codename: number for number, codename in
                distro.load_data().distributions["debian"].releases.items() if codename}
    out: list[DistroFix] = []
    for package, records in data.items():
        if not PACKAGE_NAME.fullmatch(package):
            doc.fail(f"$[{package[:60]!r}]", "expected a Debian source package name such as "
                                             "'openssh'")
        path = f"$.{package}"
        for ident, record in doc.need(records, path, dict).items():
            if not CVE_ID.fullmatch(ident):
                continue  # TEMP-… ids name no CVE: nothing in a catalog can meet them
            out.extend(_record(record, f"{path}.{ident}", package, ident, releases, doc, source))
    return out


def _record(record: Any, path: str, package: str, cve: str, releases: dict[str, str], doc: Doc,
            source: str) -> list[DistroFix]:
    doc.need(record, path, dict)
    title = one_line(doc.field(record, "description", path, str, required=False, default=""),
                     TITLE_CHARS)
    out = []
    for codename, raw in doc.field(record, "releases", path, dict).items():
        where = f"{path}.releases.{codename[:40]}"
        doc.need(raw, where, dict)
        number = releases.get(codename)
        status = doc.field(raw, "status", where, str)
        if status not in STATUSES:
            doc.fail(f"{where}.status", f"expected one of {', '.join(STATUSES)}, got {status[:40]!r}")
        if number is None or status == "undetermined":
            continue  # sid and experimental have no release number; undetermined says nothing
        fixed = None
        if status == "resolved":
            fixed = doc.field(raw, "fixed_version", where, str)
            if fixed != "0" and not distver.is_valid("deb", fixed):
                doc.fail(f"{where}.fixed_version", f"{fixed[:80]!r} is not a valid Debian version")
        urgency = doc.field(raw, "urgency", where, str, required=False, default="")
        out.append(DistroFix(
            cve=cve, distribution="debian", release=number, package=package,
            status="vulnerable" if fixed is None else "not-affected" if fixed == "0" else "fixed",
            fixed=None if fixed in (None, "0") else fixed, advisory=TRACKER + cve, source=source,
            title=title, severity=SEVERITIES.get(urgency.rstrip("*").strip().lower())))
    return out
