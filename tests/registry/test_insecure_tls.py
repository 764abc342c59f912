"""`--insecure` for a host that speaks TLS with a certificate nobody vouches for."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from matrix.errors import TransportError
from matrix.lab.tokens import CERT_FILE, KEY_FILE, load_or_create_key
from matrix.reference import parse_repository
from matrix.registry import RegistryClient


class _Registry(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"{}"
        if "/tags/list" in self.path:
            body = json.dumps({"name": "demo/app", "tags": ["1.0", "2.0"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_host(tmp_path: Path) -> Iterator[str]:
    """A registry-shaped HTTPS server on loopback with a self-signed certificate."""
    load_or_create_key(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / CERT_FILE, tmp_path / KEY_FILE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_insecure_host_with_self_signed_tls_is_read_over_tls(tls_host: str) -> None:
    repository = parse_repository(f"{tls_host}/demo/app")
    with RegistryClient(insecure=[tls_host]) as client:
        assert client.base_url(repository) == f"https://{tls_host}"
        assert client.list_tags(repository).tags == ["1.0", "2.0"]


def test_the_certificate_is_checked_for_any_other_host(tls_host: str) -> None:
    repository = parse_repository(f"{tls_host}/demo/app")
    with RegistryClient() as client, pytest.raises(TransportError):
        client.list_tags(repository)


def test_insecure_host_without_tls_falls_back_to_plain_http(registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    with RegistryClient(insecure=[host]) as client:
        assert client.base_url(parse_repository(f"{host}/demo/app")) == f"http://{host}"
