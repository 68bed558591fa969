"""``asset_profiler``: one profile per host from its services, banners and TTL.

The OS family is guessed from evidence a scanner sees without logging in: distribution
package suffixes in banners (``OpenSSH_9.2p1 Debian-2+deb12u3``), server strings
(``Apache/2.4.57 (Ubuntu)``, ``Microsoft-IIS/10.0``), and the initial TTL of ICMP
replies (64 for Linux and the BSDs, 128 for Windows, 255 for network gear). Every
guess carries its confidence and the evidence that produced it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import voluptuous as vol
from pentora_plugins.kit.inputs import publish
from pentora_plugins.kit.records import AssetProfile
from pentora_plugins.kit.records import field_of as _get

from pentora import Module, NodeContext

TAGS = {
    "web": {"http", "https", "http-proxy", "http-alt"},
    "database": {"mysql", "postgresql", "mongodb", "redis", "memcached", "mssql", "oracle",
                 "couchdb", "elasticsearch", "cassandra"},
    "mail": {"smtp", "smtps", "submission", "imap", "imaps", "pop3", "pop3s"},
    "remote-access": {"ssh", "telnet", "rdp", "vnc", "rfb", "winrm"},
    "file-transfer": {"ftp", "ftps", "sftp", "rsync", "tftp", "smb", "microsoft-ds", "nfs"},
    "dns": {"dns", "domain"},
    "directory": {"ldap", "ldaps", "kerberos"},
    "messaging": {"amqp", "mqtt", "xmpp", "irc"},
}

# (pattern over banner text, family, distribution, confidence); first match per banner.
OS_HINTS: list[tuple[re.Pattern[str], str, str | None, float]] = [
    (re.compile(r"[-+~]deb\d+u\d+|Debian-\d|\(Debian\)|\bdebian\b", re.I), "Linux", "Debian", 0.85),
    (re.compile(r"ubuntu", re.I), "Linux", "Ubuntu", 0.85),
    (re.compile(r"\.el(\d+)|Red Hat|\(Red Hat\)|RHEL", re.I), "Linux", "Red Hat", 0.8),
    (re.compile(r"CentOS", re.I), "Linux", "CentOS", 0.8),
    (re.compile(r"\bfc(\d+)\b|Fedora", re.I), "Linux", "Fedora", 0.75),
    (re.compile(r"Raspbian", re.I), "Linux", "Raspbian", 0.85),
    (re.compile(r"Alpine", re.I), "Linux", "Alpine", 0.7),
    (re.compile(r"FreeBSD", re.I), "FreeBSD", None, 0.85),
    (re.compile(r"OpenBSD", re.I), "OpenBSD", None, 0.8),
    (re.compile(r"Microsoft-IIS|Microsoft ESMTP|Windows|Win32|Win64|Microsoft FTP", re.I),
     "Windows", None, 0.8),
    (re.compile(r"Darwin|macOS|Mac OS X", re.I), "macOS", None, 0.7),
    (re.compile(r"Cisco|IOS-XE|RouterOS|MikroTik|Juniper|JUNOS", re.I), "Network device", None, 0.7),
]
DEBIAN_BUILD = re.compile(r"[-+~]deb(\d+)u\d+")  # 1:9.2p1-2+deb12u3: a Debian 12 security build
DEBIAN_RELEASES = {"10": "10 (buster)", "11": "11 (bullseye)", "12": "12 (bookworm)",
                   "13": "13 (trixie)"}


def ttl_family(ttl: int | None) -> tuple[str, float] | None:
    """The likely initial TTL behind an observed one: 64 → Unix-like, 128 → Windows."""
    if ttl is None or ttl <= 0:
        return None
    if ttl <= 64:
        return ("Linux/Unix", 0.4)
    if ttl <= 128:
        return ("Windows", 0.4)
    return ("Network device", 0.3)


def guess_os(texts: list[str], ttl: int | None) -> dict[str, Any] | None:
    votes: dict[tuple[str, str | None], list[tuple[float, str]]] = defaultdict(list)
    release = None
    for text in texts:
        for pattern, family, distro, confidence in OS_HINTS:
            m = pattern.search(text)
            if m:
                votes[(family, distro)].append((confidence, m.group(0)))
                build = DEBIAN_BUILD.search(text) if distro == "Debian" else None
                if build:
                    release = DEBIAN_RELEASES.get(build.group(1), build.group(1))
                break
    by_ttl = ttl_family(ttl)
    if not votes:
        if by_ttl is None:
            return None
        return {"family": by_ttl[0], "distribution": None, "release": None,
                "confidence": by_ttl[1], "evidence": [f"ttl {ttl}"]}
    (family, distro), hits = max(votes.items(), key=lambda kv: (len(kv[1]), max(c for c, _ in kv[1])))
    confidence = max(c for c, _ in hits)
    # Each further agreeing banner adds a little; a TTL that agrees adds a little more.
    confidence = min(0.99, confidence + 0.03 * (len(hits) - 1))
    evidence = [f"banner: {text}" for _, text in hits[:3]]
    if by_ttl and (by_ttl[0] == family or (by_ttl[0] == "Linux/Unix" and family in (
            "Linux", "FreeBSD", "OpenBSD", "macOS"))):
        confidence = min(0.99, confidence + 0.05)
        evidence.append(f"ttl {ttl}")
    return {"family": family, "distribution": distro, "release": release,
            "confidence": round(confidence, 2), "evidence": evidence}


def tags_for(services: list[str]) -> list[str]:
    return sorted({tag for tag, names in TAGS.items() for s in services if s in names})


class AssetProfiler(Module):
    """Per host: services, open ports, OS guess with confidence, and tags."""

    module_type = "asset_profiler"
    description = "per-host profile: services, open ports, OS guess (banners + TTL), tags"
    requires = ("service_fingerprints",)
    produces = ("asset_profiles",)
    config_schema = {
        vol.Optional("min_confidence", default=0.0,
                     description="leave services below this fingerprint confidence out"):
            vol.All(vol.Coerce(float), vol.Range(min=0, max=1)),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        # OS hints are kept per port: a port's banner and its fingerprint's evidence are
        # one witness, and vote once.
        hosts: dict[str, dict[str, Any]] = defaultdict(lambda: {
            "services": [], "ports": set(), "texts": defaultdict(list), "ttl": None, "hostname": None})
        for h in ctx.get("discovered_hosts", []):
            if _get(h, "alive", True):
                entry = hosts[_get(h, "address")]
                entry["ttl"] = entry["ttl"] or _get(h, "ttl")
                entry["hostname"] = entry["hostname"] or _get(h, "hostname")
        for p in ctx.get("open_ports", []):
            hosts[_get(p, "host")]["ports"].add(int(_get(p, "port")))
        for b in ctx.get("banners", []):
            port = (_get(b, "protocol", "tcp"), _get(b, "port"))
            hosts[_get(b, "host")]["texts"][port].append(str(_get(b, "data", ""))[:2048])
        for fp in ctx.get("service_fingerprints"):
            if float(_get(fp, "confidence", 0) or 0) < config["min_confidence"]:
                continue
            entry = hosts[_get(fp, "host")]
            entry["ports"].add(int(_get(fp, "port")))
            entry["services"].append({k: _get(fp, k) for k in (
                "port", "protocol", "service", "product", "version", "cpe", "tls")})
            entry["texts"][(_get(fp, "protocol", "tcp"), _get(fp, "port"))].append(
                " ".join(str(_get(fp, k) or "") for k in ("product", "version", "evidence")))
        profiles = []
        for address, entry in hosts.items():
            services = sorted(entry["services"], key=lambda s: (s["protocol"] or "", s["port"]))
            texts = ["\n".join(t) for t in entry["texts"].values()]
            profile = AssetProfile(
                host=address, hostname=entry["hostname"], os=guess_os(texts, entry["ttl"]),
                services=services, open_ports=sorted(entry["ports"]),
                tags=tags_for([s["service"] for s in services if s["service"]]))
            ctx.emit(profile)
            profiles.append(profile)
        publish(ctx, "asset_profiles", profiles)
