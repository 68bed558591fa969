"""Listeners for the example DAGs, run inside a test's network namespace: plain HTTP
(Python's http.server), HTTPS with a self-signed certificate made with ``cryptography``,
and services that speak first (a fixed banner). Prints ``ready`` once every port listens
and serves until its stdin closes.

Usage: ``python _example_servers.py '{"address": "127.0.0.1", "http": [80], "https": [443],
"banner": {"22": "SSH-2.0-OpenSSH_9.2p1\\r\\n"}}'``
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(address: str, folder: Path) -> tuple[str, str]:
    """(certificate, key) files of a self-signed certificate naming ``address``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pentora-example")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


class Page(SimpleHTTPRequestHandler):
    server_version = "ExampleHTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reads stdout
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # discovery probes reset their connections: no traceback on stderr for them


def serve_http(address: str, port: int, tls: ssl.SSLContext | None, root: str) -> None:
    server = Server((address, port), lambda *a: Page(*a, directory=root))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serve_banner(address: str, port: int, banner: bytes) -> None:
    listener = socket.create_server((address, port))

    def loop() -> None:
        while True:
            conn, _ = listener.accept()
            try:
                conn.sendall(banner)
                conn.settimeout(2)
                conn.recv(1024)
            except OSError:
                pass
            finally:
                conn.close()

    threading.Thread(target=loop, daemon=True).start()


def main(spec: dict[str, Any]) -> None:
    address = spec["address"]
    folder = Path(tempfile.mkdtemp(prefix="pentora-example-"))
    (folder / "index.html").write_text("<html><head><title>Example page</title></head></html>")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*self_signed(address, folder))
    for port in spec.get("http", []):
        serve_http(address, port, None, str(folder))
    for port in spec.get("https", []):
        serve_http(address, port, tls, str(folder))
    for port, banner in spec.get("banner", {}).items():
        serve_banner(address, int(port), banner.encode())
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
