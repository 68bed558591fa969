"""What the matcher may say of a real Debian daemon: each upstream CVE of its version is
either reported with a method that says how far the banner goes, or left out because the
catalog's Debian statement covers the installed package."""

from __future__ import annotations

import subprocess
from typing import Any

from pentora_plugins.cve.sources import load_catalog


def field(v: Any, name: str) -> Any:
    return v.get(name) if isinstance(v, dict) else getattr(v, name)


def source_package(binary: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${source:Package}", binary],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def check_findings(found: dict[str, Any], cpe: tuple[str, str], upstream: str, package: str,
                   package_version: str, exact: bool) -> None:
    """``found``: the CVE findings on the daemon's port, by id. ``exact``: its banner shows
    the package revision (OpenSSH), else only the host's other services name Debian."""
    catalog = load_catalog()
    source = source_package(package)
    hits = {h.entry.id: h.entry for h in catalog.find(*cpe, upstream)}
    for ident, v in found.items():
        entry = catalog.entry(ident)
        assert entry is None or entry.role != "client", \
            f"{ident} is a client-side flaw: {field(v, 'evidence')}"
        fix = catalog.fixes.get("debian", "12", source, ident)
        method = field(v, "method")
        if exact:
            assert method in ("banner-distro", "banner-backport-prone"), (ident, method)
        else:
            assert method in ("banner-backport-prone", "banner-distro"), (ident, method)
            assert "host: debian 12" in field(v, "evidence"), field(v, "evidence")
        if method == "banner-distro":
            assert fix is not None and fix.covers(package_version) is False, (ident, fix)
        else:
            assert field(v, "quality") < 70
    for ident, entry in hits.items():
        if entry.role == "client" or ident in found:
            continue
        fix = catalog.fixes.get("debian", "12", source, ident)
        assert fix is not None and (fix.covers(package_version) or not exact), \
            f"{ident} is in the range of {upstream} and nothing says {source} {package_version} is fixed"
