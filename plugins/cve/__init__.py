"""``cve_matcher``: known vulnerabilities of the product versions a scan found.

- ``version``: version order for real-world versions, distribution builds;
- ``catalog``: entries, ranges and the index by product;
- ``builtin``: the curated catalog ``data/cve_catalog.yaml`` (and YAML catalogs like it);
- ``nvd`` / ``osv``: offline NVD CVE JSON 2.0 and OSV files; ``sources`` picks the reader;
- ``module``: the module type.
"""

from __future__ import annotations

from typing import Any

from pentora_plugins.cve.catalog import Catalog, CatalogError, Entry, Range
from pentora_plugins.cve.cve_matcher import CveMatcher, evaluate
from pentora_plugins.cve.sources import load_catalog
from pentora_plugins.cve.version import compare, distro_build, version_key

from pentora import hookimpl

__all__ = ["Catalog", "CatalogError", "CveMatcher", "Entry", "Range", "compare", "distro_build",
           "evaluate", "load_catalog", "version_key"]


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    registry.register(CveMatcher)
