"""CISA's Known Exploited Vulnerabilities catalog (KEV, JSON) → the CVE ids known to be exploited.

The feed (https://www.cisa.gov/known-exploited-vulnerabilities-catalog)::

    {"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": "2025.01.10",
     "dateReleased": "...", "count": 1238,
     "vulnerabilities": [{"cveID": "CVE-2024-6387", "vendorProject": "OpenBSD", "product":
                          "OpenSSH", "vulnerabilityName": "...", "dateAdded": "2024-...",
                          "shortDescription": "...", "requiredAction": "...", "dueDate": "...",
                          "knownRansomwareCampaignUse": "Unknown", "notes": "...", "cwes": [...]}]}

Only ``cveID`` is kept (``Part.kev``): the catalog's entries say the rest of each CVE. Its
``vulnerabilities`` key is also NVD CVE JSON 2.0's, so ``is_kev`` is asked first: a KEV
file has ``catalogVersion``, or items with ``cveID`` where NVD's have ``cve``.
"""

from __future__ import annotations

from typing import Any

from pentora_plugins.cve.doc import Doc
from pentora_plugins.cve.fixes import CVE_ID


def is_kev(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    if "catalogVersion" in data:
        return True
    items = data.get("vulnerabilities")
    return isinstance(items, list) and bool(items) and isinstance(items[0], dict) and "cveID" in items[0]


def kev_ids(data: dict[str, Any], doc: Doc) -> frozenset[str]:
    """The ``cveID`` of every item; anything but a CVE id there is an error naming the item."""
    ids = set()
    for i, item in enumerate(doc.field(data, "vulnerabilities", "$", list)):
        path = f"$.vulnerabilities[{i}]"
        ident = doc.field(doc.need(item, path, dict), "cveID", path, str)
        if not CVE_ID.fullmatch(ident):
            doc.fail(f"{path}.cveID", f"expected a CVE id such as CVE-2024-6387, got {ident[:40]!r}")
        ids.add(ident)
    return frozenset(ids)
