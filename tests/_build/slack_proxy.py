"""A loopback stand-in for `https://hooks.slack.com`, for Prefect's Slack webhook block.

Prefect's `SlackWebhook` block (through apprise) only ever posts to `hooks.slack.com` over
https, so a test cannot point its URL at a loopback receiver. It can point the Prefect server's
HTTPS proxy at one: this is an HTTP proxy on 127.0.0.1 that answers `CONNECT` itself, speaks TLS
with a certificate for the asked host signed by a CA made for the test (the server trusts it
through `REQUESTS_CA_BUNDLE`), and keeps each request it is sent, answering as Slack does (`ok`).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: Bound on reading one request through the tunnel.
READ_TIMEOUT = 10.0


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, Any] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(subject), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


class SlackProxy:
    """The proxy; `received` holds `{"host", "path", "body"}` per request, `ca_file` the CA."""

    def __init__(self, folder: Path, host: str = "hooks.slack.com") -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("libnar test CA", ca_key, None)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = _certificate(host, leaf_key, ("libnar test CA", ca_key))
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain, key_file = folder / "leaf.pem", folder / "leaf.key"
        chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(chain, key_file)
        received: list[dict[str, str]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_CONNECT(self) -> None:
                asked = self.path.split(":")[0]
                self.send_response(200, "Connection established")
                self.end_headers()
                with tls.wrap_socket(self.connection, server_side=True) as tunnel:
                    tunnel.settimeout(READ_TIMEOUT)
                    path, body = _read_request(tunnel)
                    received.append({"host": asked, "path": path, "body": body})
                    tunnel.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def environment(self) -> dict[str, str]:
        """What a process needs to send its https requests here (loopback stays direct)."""
        return {
            "HTTPS_PROXY": self.url,
            "https_proxy": self.url,
            "REQUESTS_CA_BUNDLE": str(self.ca_file),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_request(tunnel: socket.socket) -> tuple[str, str]:
    """The path and body of one HTTP/1.1 request with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tunnel.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
    size = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            size = int(value.strip())
    while len(body) < size:
        chunk = tunnel.recv(65536)
        if not chunk:
            break
        body += chunk
    return path, body.decode("utf-8", "replace")
