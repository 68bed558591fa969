"""Probe payloads of the UDP scanner, one per protocol, and checks of the replies.

A UDP service answers only what it understands, so an empty datagram draws silence
from DNS, NTP or SNMP servers: each well-known port gets a request of its protocol.
Any reply at all proves the port open; ``recognise`` only names what answered.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

DNS_ID = 0x7065  # a fixed query id ("pe"): replies are matched by the connected socket anyway
SNMP_REQUEST_ID = 0x70656E74
SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)


def _dns_name(name: str) -> bytes:
    labels = [label for label in name.split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"


def dns_query(name: str = ".", qtype: int = 2, qclass: int = 1, recursion: bool = False) -> bytes:
    """A DNS query; by default for the root's NS records, which any DNS server answers
    (a server that will not resolve still answers, with REFUSED)."""
    flags = 0x0100 if recursion else 0
    return struct.pack("!HHHHHH", DNS_ID, flags, 1, 0, 0, 0) + _dns_name(name) + struct.pack(
        "!HH", qtype, qclass)


def ntp_request() -> bytes:
    """An NTP client request (RFC 5905): LI 3 (unsynchronised), version 4, mode 3
    (client), poll 4, precision 2^-6; the rest zero."""
    return bytes([0xE3, 0x00, 0x04, 0xFA]) + bytes(44)


def _ber(tag: int, content: bytes) -> bytes:
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _ber_int(value: int) -> bytes:
    return _ber(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def _ber_oid(oid: tuple[int, ...]) -> bytes:
    body = bytearray([40 * oid[0] + oid[1]])
    for arc in oid[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return _ber(0x06, bytes(body))


def snmp_get(community: str = "public", version: int = 0, oid: tuple[int, ...] = SYS_DESCR) -> bytes:
    """An SNMP GetRequest for ``oid`` (sysDescr.0); version 0 is SNMPv1, 1 is v2c."""
    varbind = _ber(0x30, _ber_oid(oid) + b"\x05\x00")
    pdu = _ber(0xA0, _ber_int(SNMP_REQUEST_ID) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    return _ber(0x30, _ber_int(version) + _ber(0x04, community.encode()) + pdu)


def netbios_status() -> bytes:
    """A NetBIOS name service NBSTAT query for the wildcard name ``*``."""
    name = b"*" + bytes(15)
    encoded = b"".join(bytes([0x41 + (c >> 4), 0x41 + (c & 0x0F)]) for c in name)
    return struct.pack("!HHHHHH", DNS_ID, 0, 1, 0, 0, 0) + b"\x20" + encoded + b"\0" + struct.pack(
        "!HH", 0x21, 1)


SSDP_SEARCH = (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n"
               b"MX: 1\r\nST: ssdp:all\r\n\r\n")
TFTP_READ = b"\x00\x01pentora-probe\x00octet\x00"

PAYLOADS: dict[str, bytes] = {
    "dns": dns_query(),
    "mdns": dns_query("_services._dns-sd._udp.local", qtype=12),
    "ntp": ntp_request(),
    "snmp": snmp_get(),
    "netbios-ns": netbios_status(),
    "ssdp": SSDP_SEARCH,
    "tftp": TFTP_READ,
    "empty": b"",
}

PORT_PAYLOADS: dict[int, str] = {
    53: "dns", 69: "tftp", 123: "ntp", 137: "netbios-ns", 161: "snmp", 1900: "ssdp",
    5353: "mdns",
}


def payload_name(port: int, overrides: dict[int, str] | None = None) -> str:
    """The payload sent to ``port``: an override, else the port's protocol, else empty."""
    if overrides and port in overrides:
        return overrides[port]
    return PORT_PAYLOADS.get(port, "empty")


def _is_dns_reply(data: bytes) -> bool:
    return len(data) >= 12 and struct.unpack_from("!H", data)[0] == DNS_ID and bool(data[2] & 0x80)


def _is_ntp_reply(data: bytes) -> bool:
    return len(data) >= 48 and data[0] & 0x07 in (2, 4)  # symmetric passive or server


def _is_snmp_reply(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x30 and b"\xa2" in data[2:]  # a GetResponse PDU


_RECOGNISERS: dict[str, Callable[[bytes], bool]] = {
    "dns": _is_dns_reply, "mdns": _is_dns_reply, "netbios-ns": _is_dns_reply,
    "ntp": _is_ntp_reply, "snmp": _is_snmp_reply,
    "ssdp": lambda data: data.startswith(b"HTTP/1.1 200"),
    "tftp": lambda data: data[:2] in (b"\x00\x03", b"\x00\x05", b"\x00\x06"),
}


def recognise(payload: str, data: bytes) -> str:
    """``<payload>-response`` when the reply is one of that protocol, else ``udp-response``."""
    check = _RECOGNISERS.get(payload)
    return f"{payload}-response" if check and check(data) else "udp-response"
