"""What changed between the records of two scans, as ndiff shows nmap users: what
``pentora scans diff`` and the server's diff route print.

Compared per host: the host itself (up or gone), its ports (by protocol and number: open
or another state), the service on each port (service, product, version), and the other
records (``records`` in the JSON) — findings (vulnerabilities) by id (severity compared),
web technologies by name (version),
the TLS certificate (subject, issuer, expiry), HTTP answers by URL (status, server, title),
anything else by its whole content.
Banners and asset profiles are left out: they restate ports and services.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pentora_plugins.kit.records import address_key

SKIPPED_KINDS = ("banner", "asset", "target")


def _show(f: dict[str, Any], *keys: str) -> str:
    return " ".join(str(f[k]) for k in keys if f.get(k) not in (None, "", []))


# kind → (what names it on its port, what is compared): a change of the second is "~".
ASPECTS = {
    "vulnerability": lambda f: (str(f.get("id")), _show(f, "severity", "cvss")),
    "webtech": lambda f: (str(f.get("name")), _show(f, "version")),
    "tls": lambda f: ("certificate", _show(f, "subject", "issuer", "not_after")),
    "http": lambda f: (str(f.get("url") or ""), _show(f, "status", "server", "title")),
}


def _where(f: dict[str, Any]) -> tuple[str, str]:
    """(host, ``port/proto`` or '') a record belongs to."""
    host = str(f.get("host") or f.get("address") or "")
    port = f.get("port")
    return host, (f"{port}/{f.get('protocol') or 'tcp'}" if port not in (None, "") else "")


def index(records: Iterable[dict[str, Any]]) -> dict[str, dict[tuple[Any, ...], str]]:
    """Per aspect (hosts, ports, services, the other records): identity → what is shown of it."""
    out: dict[str, dict[tuple[Any, ...], str]] = {"hosts": {}, "ports": {}, "services": {},
                                                   "records": {}}
    for f in records:
        kind = f.get("kind")
        host, port = _where(f)
        if kind == "host":
            if f.get("alive", True):
                out["hosts"][(host,)] = "up"
        elif kind == "port":
            out["ports"][(host, port)] = str(f.get("state", "open"))
        elif kind == "service":
            shown = " ".join(str(f[k]) for k in ("service", "product", "version") if f.get(k))
            out["services"][(host, port)] = shown
        elif kind in ASPECTS:
            name, shown = ASPECTS[kind](f)
            out["records"][(host, port, f"{kind} {name}".strip())] = shown
        elif kind not in SKIPPED_KINDS:
            body = {k: v for k, v in f.items() if k not in ("kind", "host", "address", "port")}
            out["records"][(host, port, f"{kind} {json.dumps(body, sort_keys=True)[:200]}")] = ""
    return out


def diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """Per aspect: ``added``, ``removed`` and ``changed`` (``[identity, old, new]``)."""
    a, b = index(old), index(new)
    out: dict[str, dict[str, list[Any]]] = {}
    for aspect in a:
        before, after = a[aspect], b[aspect]
        out[aspect] = {
            "added": [[*k, after[k]] for k in _sorted(after.keys() - before.keys())],
            "removed": [[*k, before[k]] for k in _sorted(before.keys() - after.keys())],
            "changed": [[*k, before[k], after[k]] for k in _sorted(before.keys() & after.keys())
                        if before[k] != after[k]],
        }
    return out


def _sorted(keys: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(keys, key=lambda k: (address_key(k[0]), *map(_port_key, k[1:])))


def _port_key(value: Any) -> tuple[int, str]:
    text = str(value)
    number = text.split("/", 1)[0]
    return (int(number), text) if number.isdigit() else (1 << 20, text)


def render(changes: dict[str, dict[str, list[Any]]], old: str, new: str) -> str:
    """ndiff-like text: per host, ``+`` appeared, ``-`` disappeared, ``~`` changed."""
    lines: dict[str, list[tuple[Any, str]]] = {}

    def put(host: str, sort: Any, text: str) -> None:
        lines.setdefault(host, []).append((sort, text))

    for sign, key in (("+", "added"), ("-", "removed")):
        for host, _up in changes["hosts"][key]:
            put(host, (0, ""), f"{sign} host {host} {'is up' if sign == '+' else 'is gone'}")
        for host, port, state in changes["ports"][key]:
            put(host, (1, _port_key(port)), f"{sign} {port} {state}")
        for host, port, shown in changes["services"][key]:
            put(host, (2, _port_key(port)), f"{sign} {port} service {shown or 'unknown'}")
        for host, port, what, extra in changes["records"][key]:
            put(host, (3, _port_key(port)), f"{sign} {port + ' ' if port else ''}{what} {extra}".rstrip())
    for host, port, before, after in changes["ports"]["changed"]:
        put(host, (1, _port_key(port)), f"~ {port} {before} -> {after}")
    for host, port, before, after in changes["services"]["changed"]:
        put(host, (2, _port_key(port)), f"~ {port} service {before or 'unknown'} -> {after or 'unknown'}")
    for host, port, what, before, after in changes["records"]["changed"]:
        put(host, (3, _port_key(port)), f"~ {port + ' ' if port else ''}{what} {before} -> {after}")
    out = [f"--- scan {old}", f"+++ scan {new}"]
    if not lines:
        out.append("no differences")
    for host in sorted(lines, key=address_key):
        out.append(f"{host or '(no host)'}:")
        out += [f"  {text}" for _, text in sorted(lines[host], key=lambda x: x[0])]
    return "\n".join(out)
