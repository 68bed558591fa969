"""ssh_checks against scripted SSH servers on 127.0.0.1 (the real sshd is in
tests/integration/test_tls_ssh_daemons.py): identification, KEXINIT parsing, verdicts."""

from __future__ import annotations

import os
import struct
from typing import Any

import pentora_plugins.checks
import pentora_plugins.checks.ssh_checks as checks_ssh
import pentora_plugins.engine
import pytest
from pentora_plugins.checks.ssh_checks import SshError, parse_kexinit, read_kexinit
from pentora_plugins.kit.records import ServiceFingerprint, Vulnerability

from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector

from ._tlsfixtures import Dripper

HOST = "127.0.0.1"
IDENT = b"SSH-2.0-OpenSSH_7.4\r\n"
MODERN = {"kex": "curve25519-sha256,diffie-hellman-group14-sha256", "hostkey": "ssh-ed25519,rsa-sha2-512",
          "ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-ctr",
          "macs": "hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com"}
WEAK = {"kex": "curve25519-sha256,diffie-hellman-group14-sha1,diffie-hellman-group1-sha1",
        "hostkey": "ssh-ed25519,ssh-rsa,ssh-dss",
        "ciphers": "aes128-ctr,aes256-cbc,3des-cbc,arcfour256",
        "macs": "hmac-sha2-256,hmac-md5-96,hmac-sha1-96,umac-64@openssh.com"}


def kexinit(lists: dict[str, str]) -> bytes:
    """A whole unencrypted binary packet holding SSH_MSG_KEXINIT with ``lists``."""
    names = [lists["kex"], lists["hostkey"], lists["ciphers"], lists["ciphers"], lists["macs"],
             lists["macs"], "none,zlib@openssh.com", "none,zlib@openssh.com", "", ""]
    payload = bytes([20]) + os.urandom(16)
    payload += b"".join(struct.pack("!I", len(n)) + n.encode() for n in names) + b"\x00" + bytes(4)
    padding = 8 - (len(payload) + 5) % 8 + 8
    return struct.pack("!IB", len(payload) + padding + 1, padding) + payload + bytes(padding)


def ssh_server(tcp_server: Any, lists: dict[str, str], ident: bytes = IDENT, preamble: bytes = b"") -> Any:
    """Sends its identification, and its KEXINIT once the client has sent its own."""
    packet = kexinit(lists)
    return tcp_server(banner=preamble + ident,
                      respond=lambda data: packet if data.startswith(b"SSH-2.0-") else None)


def run_checks(ports: list[int]) -> tuple[dict[tuple[int | None, str], Vulnerability], RecordCollector]:
    fps = [ServiceFingerprint(HOST, p, service="ssh") for p in ports]
    fps.append(ServiceFingerprint(HOST, 1, service="http"))  # not SSH: never contacted
    dag = (DagBuilder().add_node("seed", "set", config={"values": {"service_fingerprints": fps}})
           .add_node("ssh", "ssh_checks", ["seed"], config={"timeout": "3s"}).build())
    collector = RecordCollector()
    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.checks, collector], autoload=False)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.ok, result.nodes["ssh"].error
    return {(v.port, v.id): v for v in result.context.get("vulnerabilities")}, collector


def test_weak_algorithms_become_one_finding_per_category(tcp_server) -> None:
    server = ssh_server(tcp_server, WEAK)
    found, collector = run_checks([server.port])
    assert {i for _, i in found} == {"PENTORA-SSH-WEAK-KEX", "PENTORA-SSH-WEAK-HOSTKEY",
                                     "PENTORA-SSH-WEAK-CIPHER", "PENTORA-SSH-WEAK-MAC"}
    kex = found[(server.port, "PENTORA-SSH-WEAK-KEX")]
    assert kex.severity == "high" and kex.source == "check:ssh" and kex.cvss == 7.4
    assert kex.evidence.splitlines() == ["identification: SSH-2.0-OpenSSH_7.4",
                                         "diffie-hellman-group14-sha1: SHA-1 (RFC 9142: SHOULD NOT)",
                                         "diffie-hellman-group1-sha1: 1024-bit Oakley group 2 (Logjam) "
                                         "with SHA-1"]
    ciphers = found[(server.port, "PENTORA-SSH-WEAK-CIPHER")].evidence
    assert "aes256-cbc: CBC mode" in ciphers and "arcfour256: RC4" in ciphers and "aes128-ctr" not in ciphers
    macs = found[(server.port, "PENTORA-SSH-WEAK-MAC")]
    assert macs.severity == "medium" and "umac-64@openssh.com: 64-bit tag" in macs.evidence
    hostkey = found[(server.port, "PENTORA-SSH-WEAK-HOSTKEY")].evidence
    assert "ssh-rsa: RSA signatures with SHA-1" in hostkey and "ssh-dss: DSA" in hostkey
    assert server.received[0] == checks_ssh.CLIENT_ID  # it said who it is, then nothing more
    assert len(collector.of("vulnerability")) == 4
    # what the server offered, read off the wire: no version inference
    assert {(v.method, v.quality) for v in found.values()} == {("active", 95)}


def test_modern_server_gives_no_finding_and_lines_before_the_ident_are_skipped(tcp_server) -> None:
    server = ssh_server(tcp_server, MODERN, preamble=b"Welcome\r\nauthorised use only\r\n")
    found, _ = run_checks([server.port])
    assert found == {}
    algorithms = read_kexinit(HOST, server.port, 3)
    assert algorithms.ident == "SSH-2.0-OpenSSH_7.4"
    assert algorithms.category("ciphers") == MODERN["ciphers"].split(",")
    assert algorithms.lists["compression_c2s"] == ["none", "zlib@openssh.com"]


def test_ssh1_only_server(tcp_server) -> None:
    server = tcp_server(banner=b"SSH-1.5-OldSSHd\r\n", close_after_banner=True)
    found, _ = run_checks([server.port])
    v = found[(server.port, "PENTORA-SSH-PROTOCOL-1")]
    assert v.severity == "high" and (v.method, v.quality) == ("active", 95)


def test_servers_that_are_not_ssh_give_no_finding_and_no_failure(tcp_server, closed_tcp_port) -> None:
    silent = tcp_server(banner=b"220 mail ESMTP\r\n", close_after_banner=True)
    garbage = tcp_server(banner=IDENT, respond=lambda data: b"\x00\x00\xff\xff\x04garbage")
    found, _ = run_checks([silent.port, garbage.port, closed_tcp_port])
    assert found == {}
    with pytest.raises(SshError, match="implausible packet length"):
        read_kexinit(HOST, garbage.port, 3)


def test_a_server_dripping_its_kexinit_is_cut_off(tcp_server) -> None:
    drip = Dripper(b"\x00\x00\x01\x00\x08")  # a 256-byte packet, never finished
    server = tcp_server(handler=lambda conn: (conn.sendall(b"SSH-2.0-x\r\n"), drip(conn)))
    with pytest.raises(TimeoutError, match="no KEXINIT within 0.6s"):
        read_kexinit(HOST, server.port, 0.3)
    assert drip.cut_off.wait(10), "ssh_checks kept reading from a server that never finished"


def test_kexinit_parser_refuses_truncation_and_other_messages() -> None:
    payload = kexinit(MODERN)[5:]
    with pytest.raises(SshError, match="expected SSH_MSG_KEXINIT"):
        parse_kexinit(b"\x15" + payload[1:])
    with pytest.raises(SshError, match="truncated"):
        parse_kexinit(payload[:40])
    assert parse_kexinit(payload)["kex"] == MODERN["kex"].split(",")
