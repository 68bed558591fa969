"""``cve_matcher``: known vulnerabilities of the product versions a scan found.

- ``version``: version order for real-world versions, distribution builds;
- ``catalog``: entries, ranges and the index by product;
- ``builtin``: the curated catalog ``data/cve_catalog.yaml`` (and YAML catalogs like it);
- ``nvd`` / ``osv`` / ``kev`` / ``debian_tracker``: offline NVD CVE JSON 2.0, OSV, CISA KEV
  and Debian Security Tracker files; ``sources`` picks the reader;
- ``fixes``: what distributions say of a CVE in their packages;
- ``feeds`` / ``_update`` / ``_cli``: ``pentora catalog update | status``, the feed cache;
- ``cve_matcher``: the module type.
"""

from __future__ import annotations

from typing import Any

from pentora import hookimpl


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.cve.cve_matcher:CveMatcher", name="cve_matcher")


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    from pentora_plugins.cve._cli import add_commands

    add_commands(subparsers, common)
