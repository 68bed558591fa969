"""ssl_analyzer, tls_checks and ssh_checks against Debian's nginx (with TLS) and sshd.

nginx serves HTTPS on 127.0.0.1 with a chain made here (leaf + intermediate), offering
TLS 1.0 to 1.3 and, among its suites, ``NULL-SHA``; one sshd accepts weak algorithms
(group1/group14-sha1, ssh-rsa with an RSA host key, 3des-cbc, aes128-cbc, hmac-md5),
another keeps Debian's defaults. One DAG (connect scan, banners, fingerprints, the
analyzer and both checks, a JSONL report) runs through the CLI; the protocols and
suites found on nginx are compared with ``nmap --script ssl-enum-ciphers`` when nmap is
installed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ..plugins._tlsfixtures import issue, write
from . import daemons

pytestmark = pytest.mark.integration

HOST = daemons.HOST
NGINX_TLS = ("ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n"
             "    ssl_ciphers 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-SHA:AES128-SHA:NULL-SHA"
             ":@SECLEVEL=0';")
WEAK_SSHD = ("KexAlgorithms +diffie-hellman-group1-sha1,diffie-hellman-group14-sha1\n"
             "Ciphers +3des-cbc,aes128-cbc\nMACs +hmac-md5\nHostKeyAlgorithms +ssh-rsa\n")
DAG = """
name: tls-ssh-checks
engine: {{fail_fast: false}}
nodes:
  - {{instance_id: targets, module_type: target_parser, config: {{targets: "{host}"}}}}
  - {{instance_id: ports, module_type: connect_scanner, depends_on: [targets],
     config: {{ports: "{ports}", input: targets}}}}
  - {{instance_id: banners, module_type: banner_grabber, depends_on: [ports]}}
  - {{instance_id: fingerprint, module_type: fingerprint_parser, depends_on: [banners]}}
  - {{instance_id: tls, module_type: ssl_analyzer, depends_on: [fingerprint],
     config: {{check_ciphers: true}}}}
  - {{instance_id: tls_checks, module_type: tls_checks, depends_on: [tls]}}
  - {{instance_id: ssh_checks, module_type: ssh_checks, depends_on: [fingerprint]}}
  - {{instance_id: report, module_type: json_reporter, depends_on: [tls_checks, ssh_checks],
     config: {{output: "{output}"}}}}
"""


@dataclass
class Scan:
    nginx: daemons.Daemon
    weak_sshd: daemons.Daemon
    default_sshd: daemons.Daemon
    done: subprocess.CompletedProcess[str]
    tls: dict[int, dict[str, Any]]
    vulns: dict[tuple[int, str], dict[str, Any]]
    nmap: dict[str, set[str]] | None


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    reason = daemons.ensure_packages()
    if reason:
        pytest.skip(f"real daemons unavailable: {reason}")
    tmp = tmp_path_factory.mktemp("tls-ssh")
    root = issue("pentora integration root", ca=True)
    intermediate = issue("pentora integration intermediate", issuer=root, ca=True)
    files = write(tmp / "nginx", issue("localhost", issuer=intermediate, names=("localhost", HOST)),
                  intermediate)
    rsa_key = tmp / "ssh_host_rsa_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(rsa_key)], check=True)
    with contextlib.ExitStack() as stack:
        nginx = stack.enter_context(daemons.nginx(tls=files, tls_directives=NGINX_TLS))
        weak = stack.enter_context(daemons.sshd(f"HostKey {rsa_key}\n" + WEAK_SSHD))
        default = stack.enter_context(daemons.sshd())
        assert nginx.tls_port is not None
        out = tmp / "scan.jsonl"
        dag = tmp / "dag.yaml"
        dag.write_text(DAG.format(host=HOST, output=out,
                                  ports=f"{nginx.tls_port},{weak.port},{default.port}"))
        done = subprocess.run([sys.executable, "-m", "pentora", "dag", "run", str(dag)],
                              capture_output=True, text=True, cwd=daemons.ROOT, timeout=300)
        nmap = nmap_ciphers(nginx.tls_port)
    yield Scan(nginx, weak, default, done,
               {r["port"]: r for r in daemons.jsonl_records(out, "tls")},
               {(v["port"], v["id"]): v for v in daemons.jsonl_records(out, "vulnerability")}, nmap)


def nmap_ciphers(port: int) -> dict[str, set[str]] | None:
    """Protocol -> suite names as nmap's ssl-enum-ciphers reports them (None without nmap)."""
    if shutil.which("nmap") is None:
        return None
    done = subprocess.run(["nmap", "-n", "-Pn", "--script", "ssl-enum-ciphers", "-p", str(port), HOST,
                           "-oX", "-"], capture_output=True, text=True, timeout=300, check=True)
    script = ET.fromstring(done.stdout).find(".//script[@id='ssl-enum-ciphers']")
    found: dict[str, set[str]] = {}
    for protocol in script if script is not None else []:
        names = {e.text or "" for e in protocol.iterfind("./table[@key='ciphers']/table/elem[@key='name']")}
        # nmap names the TLS 1.3 suites TLS_AKE_WITH_...; IANA (and pentora) TLS_...
        if protocol.get("key", "").startswith(("SSL", "TLS")):  # not "least strength"
            found[protocol.get("key", "")] = {n.replace("TLS_AKE_WITH_", "TLS_") for n in names}
    return found


def test_scan_succeeds(scan: Scan) -> None:
    assert scan.done.returncode == 0, f"exit {scan.done.returncode}\n{scan.done.stderr[-3000:]}"


def test_nginx_certificate_chain(scan: Scan) -> None:
    report = scan.tls[scan.nginx.tls_port]
    assert report["error"] is None
    assert report["subject"] == "O=pentora tests,CN=localhost"
    assert report["issuer"] == "O=pentora tests,CN=pentora integration intermediate"
    assert [c["signed_by_next"] for c in report["chain"]] == [True, None]
    assert (report["self_signed"], report["expired"], report["hostname_mismatch"]) == (False, False, False)
    assert set(scan.tls) == {scan.nginx.tls_port}  # the SSH ports are not TLS


def test_nginx_protocols_and_suites(scan: Scan) -> None:
    report = scan.tls[scan.nginx.tls_port]
    assert report["protocols"] == {"SSLv3": False, "TLSv1.0": True, "TLSv1.1": True, "TLSv1.2": True,
                                   "TLSv1.3": True}
    tls12 = {c["name"]: c for c in report["ciphers"] if c["protocol"] == "TLSv1.2"}
    assert set(tls12) == {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
                          "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_NULL_SHA"}
    assert [n for n, c in tls12.items() if c["weak"]] == ["TLS_RSA_WITH_NULL_SHA"]


def test_nginx_findings(scan: Scan) -> None:
    port = scan.nginx.tls_port
    ids = {i for p, i in scan.vulns if p == port}
    assert ids == {"PENTORA-TLS-WEAK-PROTOCOL-TLSV1.0", "PENTORA-TLS-WEAK-PROTOCOL-TLSV1.1",
                   "PENTORA-TLS-WEAK-CIPHER"}
    assert "TLS_RSA_WITH_NULL_SHA (0x0002): NULL cipher" in scan.vulns[(port, "PENTORA-TLS-WEAK-CIPHER")][
        "evidence"]


def test_nginx_agrees_with_nmap_ssl_enum_ciphers(scan: Scan) -> None:
    if scan.nmap is None:
        pytest.skip("nmap is not installed: no ssl-enum-ciphers to compare with")
    report = scan.tls[scan.nginx.tls_port]
    ours: dict[str, set[str]] = {}
    for c in report["ciphers"]:
        ours.setdefault(c["protocol"], set()).add(c["name"])
    assert ours == scan.nmap


def test_weak_sshd_findings(scan: Scan) -> None:
    port = scan.weak_sshd.port
    found = {i: v for (p, i), v in scan.vulns.items() if p == port}
    assert set(found) == {"PENTORA-SSH-WEAK-KEX", "PENTORA-SSH-WEAK-HOSTKEY", "PENTORA-SSH-WEAK-CIPHER",
                          "PENTORA-SSH-WEAK-MAC"}
    assert found["PENTORA-SSH-WEAK-KEX"]["severity"] == "high"
    assert "diffie-hellman-group1-sha1" in found["PENTORA-SSH-WEAK-KEX"]["evidence"]
    assert "ssh-rsa: RSA signatures with SHA-1" in found["PENTORA-SSH-WEAK-HOSTKEY"]["evidence"]
    assert "3des-cbc" in found["PENTORA-SSH-WEAK-CIPHER"]["evidence"]
    assert "hmac-md5: MD5" in found["PENTORA-SSH-WEAK-MAC"]["evidence"]
    assert all(v["source"] == "check:ssh" for v in found.values())


def test_default_sshd_offers_only_umac64_of_the_weak_ones(scan: Scan) -> None:
    found = {i: v for (p, i), v in scan.vulns.items() if p == scan.default_sshd.port}
    # Debian's OpenSSH 9.2 still lists umac-64 MACs (64-bit tags) by default; nothing else weak.
    assert set(found) == {"PENTORA-SSH-WEAK-MAC"}
    assert found["PENTORA-SSH-WEAK-MAC"]["severity"] == "low"
    assert "umac-64" in found["PENTORA-SSH-WEAK-MAC"]["evidence"]
