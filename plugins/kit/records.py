"""The standard records, one dataclass per DataContext key.

Each record is a plain, JSON-serialisable dataclass; ``kind`` names its line in the
JSONL output. Lists of records are kept sorted by ``sort_key`` so that the same scan
gives the same output whatever the timing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any, ClassVar

from pentora import ModuleError


def address_key(address: str) -> tuple[int, int, str]:
    """Sort addresses numerically, IPv4 before IPv6, names last."""
    try:
        # a dotted quad in C first: sorting a sweep's findings is millions of calls, and
        # ipaddress.ip_address costs ten times more
        return (0, int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big"), "")
    except OSError:
        pass
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (2, 0, address)
    return (0 if ip.version == 4 else 1, int(ip), "")


_SCALARS = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


class Record:
    kind: ClassVar[str] = ""
    # Every record is a dataclass (the subclasses): asdict() and fields() take it.
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        # Most records hold scalars and lists of scalars: copied shallowly here, because
        # asdict's deep copy made writing a sweep's records cost more than finding them.
        out: dict[str, Any] = {}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            kind = type(value)
            if kind in _SCALARS:
                out[name] = value
            elif kind is list and all(type(v) in _SCALARS for v in value):
                out[name] = list(value)
            else:  # nested records or mappings: asdict converts them all the way down
                return asdict(self)
        return out

    def sort_key(self) -> tuple[Any, ...]:
        raise NotImplementedError


@dataclass
class Target(Record):
    kind: ClassVar[str] = "target"
    address: str
    hostname: str | None = None
    source: str = ""

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.address), self.hostname or "")


@dataclass
class Host(Record):
    kind: ClassVar[str] = "host"
    address: str
    hostname: str | None = None
    alive: bool = True
    method: str = ""
    # The discovery methods that found it (``["icmp", "tcp_probe"]`` once merged);
    # ``method`` is the same joined by ``+``.
    methods: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    ttl: int | None = None
    mac: str | None = None
    reason: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.address),)


@dataclass
class Port(Record):
    kind: ClassVar[str] = "port"
    host: str
    port: int
    protocol: str = "tcp"
    state: str = "open"
    method: str = ""
    reason: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host), self.protocol, self.port)

    def to_dict(self) -> dict[str, Any]:
        # every field a scalar: no deep copy (asdict's), which made writing a sweep's
        # open ports cost more than finding them
        return dict(vars(self))


@dataclass
class Banner(Record):
    kind: ClassVar[str] = "banner"
    host: str
    port: int
    protocol: str = "tcp"
    tls: bool = False
    probe: str = ""
    data: str = ""

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host), self.protocol, self.port, self.probe)


@dataclass
class ServiceFingerprint(Record):
    kind: ClassVar[str] = "service"
    host: str
    port: int
    protocol: str = "tcp"
    service: str = "unknown"
    product: str | None = None
    version: str | None = None
    cpe: str | None = None
    confidence: float = 0.0
    tls: bool = False
    evidence: str = ""
    # OS hints a fingerprint rule gives, e.g. {"family": "Linux", "distribution": "Debian"}
    os: dict[str, Any] | None = None
    info: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host), self.protocol, self.port)


@dataclass
class AssetProfile(Record):
    kind: ClassVar[str] = "asset"
    host: str
    hostname: str | None = None
    os: dict[str, Any] | None = None
    services: list[dict[str, Any]] = field(default_factory=list)
    open_ports: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host),)


@dataclass
class Vulnerability(Record):
    kind: ClassVar[str] = "vulnerability"
    host: str
    port: int | None
    id: str
    title: str = ""
    severity: str = "info"
    cvss: float | None = None
    evidence: str = ""
    references: list[str] = field(default_factory=list)
    source: str = ""
    # How the finding was established (kit.quality: package, banner-distro, banner,
    # banner-backport-prone, active) and its quality of detection 0-100; None: not stated
    # (counted as verified, as before the scale existed).
    quality: int | None = None
    method: str | None = None
    known_exploited: bool = False  # listed in CISA's Known Exploited Vulnerabilities

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host), self.port or 0, self.id)


@dataclass
class InstalledPackages(Record):
    """The packages installed on one host (``packages``), read by a credentialed check:
    the distribution and release from ``/etc/os-release``, the package manager, and one
    ``{"name", "version", "source", "source_version", "arch"}`` per package (``source``
    the distribution's source package; ``source_version`` its version where it differs
    from the binary's, as a binNMU's does)."""

    kind: ClassVar[str] = "packages"
    host: str
    distribution: str | None = None  # kit.distro id: debian, ubuntu, rhel, alpine...
    release: str | None = None       # release number: 12, 22.04, 9, 3.19
    codename: str | None = None
    manager: str = ""                # dpkg, rpm, apk
    packages: list[dict[str, Any]] = field(default_factory=list)
    port: int | None = None          # the SSH port the inventory was read through

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host),)


@dataclass
class HttpResponse(Record):
    """What ``http_scanner`` saw of one web port (``http_responses``); every string in it
    came from the target: capped in size, decoded with replacement characters."""

    kind: ClassVar[str] = "http"
    host: str
    port: int
    tls: bool = False
    url: str = ""
    status: int | None = None
    reason: str = ""
    server: str | None = None
    title: str | None = None
    redirects: list[str] = field(default_factory=list)
    location: str | None = None  # a redirect not followed (another host or port)
    statuses: dict[str, int] = field(default_factory=dict)  # method → status
    allowed_methods: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    security_headers_present: list[str] = field(default_factory=list)
    security_headers_missing: list[str] = field(default_factory=list)
    cookies: list[dict[str, Any]] = field(default_factory=list)  # name, secure, httponly, samesite
    favicon_hash: int | None = None  # Shodan-style: mmh3 of the base64 of the icon
    body: str = ""
    body_truncated: bool = False
    error: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host), self.port, self.url)


@dataclass
class WebTechnology(Record):
    kind: ClassVar[str] = "webtech"
    host: str
    port: int
    name: str
    version: str | None = None
    categories: list[str] = field(default_factory=list)
    cpe: str | None = None
    confidence: float = 0.0
    evidence: str = ""

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host), self.port, self.name.lower())


@dataclass
class TlsReport(Record):
    """What ``ssl_analyzer`` found on one TLS port (``tls_results``): the leaf certificate's
    facts, the chain as sent (leaf first, one dict per certificate), and with
    ``check_ciphers`` the protocol versions (``SSLv3`` … ``TLSv1.3`` → accepted) and the
    suites accepted (name, code, protocol, weak, reason)."""

    kind: ClassVar[str] = "tls"
    host: str
    port: int
    server_name: str | None = None
    subject: str | None = None
    issuer: str | None = None
    sans: list[str] = field(default_factory=list)
    not_before: str | None = None
    not_after: str | None = None
    key_type: str | None = None
    key_bits: int | None = None
    signature_algorithm: str | None = None
    self_signed: bool | None = None
    expired: bool | None = None
    hostname_mismatch: bool | None = None
    chain: list[dict[str, Any]] = field(default_factory=list)
    protocols: dict[str, bool] = field(default_factory=dict)
    ciphers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        return (address_key(self.host), self.port)


def sorted_records(records: Any) -> list[Any]:
    return sorted(records, key=lambda r: r.sort_key())


# -- reading records back ------------------------------------------------------------------


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of a record or of its dict (as read back from JSONL or a store)."""
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def record_dict(kind: str, record: Any) -> dict[str, Any]:
    """``{"kind": kind, **fields}`` for a record dataclass, a dict or an object with to_dict()."""
    if hasattr(record, "to_dict"):
        data = record.to_dict()
    elif dataclasses.is_dataclass(record) and not isinstance(record, type):
        data = dataclasses.asdict(record)
    elif isinstance(record, dict):
        data = dict(record)
    else:
        data = {"value": record}
    data.pop("kind", None)
    return {"kind": kind, **data}


_RESPONSE_FIELDS = {f.name for f in fields(HttpResponse)}


def as_response(item: Any) -> HttpResponse:
    """An ``HttpResponse`` from a record or its dict (as read back from JSONL)."""
    if isinstance(item, HttpResponse):
        return item
    if isinstance(item, dict) and "host" in item and "port" in item:
        return HttpResponse(**{k: v for k, v in item.items() if k in _RESPONSE_FIELDS})
    raise ModuleError(f"http_responses holds {type(item).__name__} {item!r:.80}; "
                      f"expected HttpResponse records (from http_scanner)")
