"""An engine API on a Unix socket that misbehaves on purpose, for faults a real dockerd is not
easily made to show on cue: it hangs without a word, or breaks off or garbles a pull's stream.

It answers just enough of the API for the docker SDK: the version negotiation, a ping, image
inspection (no image is ever there) and the pull (`POST /images/create`), whose progress stream
is where the fault is.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

# What the pull stream does: send an event and cut the connection inside the next chunk;
# send text that is not JSON; or send an event and then nothing at all.
BREAK_OFF = "break-off"
GARBLE = "garble"
STALL = "stall"
FIRST_EVENT = json.dumps({"status": "Pulling from demo/app", "id": "1.0"}).encode() + b"\r\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def do_GET(self) -> None:
        if self.path.endswith("/version"):
            self._json(200, {"Version": "99.0.0-fake", "ApiVersion": "1.41"})
        elif self.path.endswith("/_ping"):
            self._send(200, b"OK", "text/plain")
        else:
            self._json(404, {"message": "No such image"})

    def do_HEAD(self) -> None:
        self._send(200, b"", "text/plain")

    def do_DELETE(self) -> None:
        self._json(404, {"message": "No such image"})

    def do_POST(self) -> None:
        if "/images/create" not in self.path:
            self._json(404, {"message": "not here"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(FIRST_EVENT)
        fault = self.server.fault
        if fault == BREAK_OFF:
            self.wfile.write(b"400\r\n" + b'{"status": "Downloading"')
            self.wfile.flush()
            self.close_connection = True
        elif fault == GARBLE:
            self._chunk(b"<html>this is no progress event</html>\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.server.stop.wait()
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, body: object) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, fault: str) -> None:
        self.fault = fault
        self.stop = threading.Event()
        super().__init__(path, _Handler)


@contextmanager
def faulty_engine(fault: str) -> Iterator[str]:
    """An engine whose pull stream has `fault`; yields its `unix://` endpoint."""
    directory = Path(tempfile.mkdtemp(prefix="pm-fake-", dir="/tmp"))
    server = _Server(str(directory / "docker.sock"), fault)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{directory}/docker.sock"
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        _remove(directory)


@contextmanager
def silent_engine() -> Iterator[str]:
    """A socket that accepts connections and never answers, as a hung engine does."""
    directory = Path(tempfile.mkdtemp(prefix="pm-hung-", dir="/tmp"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(directory / "docker.sock"))
    listener.listen(64)
    try:
        yield f"unix://{directory}/docker.sock"
    finally:
        listener.close()
        _remove(directory)


def _remove(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()
    os.rmdir(directory)
