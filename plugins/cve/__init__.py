"""``cve_matcher``: known vulnerabilities of the product versions a scan found.

- ``version``: version order for real-world versions, distribution builds;
- ``catalog``: entries, ranges and the index by product;
- ``builtin``: the curated catalog ``data/cve_catalog.yaml`` (and YAML catalogs like it);
- ``nvd`` / ``osv``: offline NVD CVE JSON 2.0 and OSV files; ``sources`` picks the reader;
- ``cve_matcher``: the module type.
"""

from __future__ import annotations

from typing import Any

from pentora import hookimpl


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.cve.cve_matcher import CveMatcher  # when registering, not at start-up

    registry.register(CveMatcher)
