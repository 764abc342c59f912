"""A lying or hostile registry: poisoned schema 1, slow drip, huge or deeply nested answers,
secrets echoed back, and names that try to leave the repository."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from matrix import mediatypes as mt
from matrix.errors import (
    DataError,
    DigestMismatchError,
    ProtocolError,
    ReferenceError_,
    TransportError,
    redact_message,
)
from matrix.probe import Prober, probe_repository
from matrix.reference import parse_reference, parse_repository
from matrix.registry import client as client_module
from matrix.registry.manifest import Manifest
from matrix.registry.store import ManifestStore
from matrix.registry.wire import MAX_JSON_DEPTH, load_json
from tests.registry import builders as b
from tests.registry.fake import make_client, manifest_response

REPO = parse_repository("127.0.0.1:5999/good/app")
EVIL = parse_repository("127.0.0.1:5999/poison/app")
TOKEN = "SUPERSECRETTOKEN_abc123"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jws(document: dict[str, object], length: int, tail: bytes) -> bytes:
    protected = _b64url(json.dumps({"formatLength": length, "formatTail": _b64url(tail)}).encode())
    signature = {"protected": protected, "header": {}, "signature": "x"}
    return json.dumps({**document, "signatures": [signature]}).encode()


def poisoned_schema1(target: Manifest) -> bytes:
    """A schema 1 document whose rebuilt "payload" is the bytes of `target`."""
    document = {"schemaVersion": 1, "name": "poison/app", "tag": "evil", "fsLayers": []}
    data = _jws(document, 1, target.data[1:])
    assert data[:1] + target.data[1:] == target.data
    return data


def serve(data: bytes, media_type: str, digest: str) -> httpx.Response:
    headers = {"Content-Type": media_type, "Docker-Content-Digest": digest}
    return httpx.Response(200, headers=headers, content=data)


# Store poisoning through schema 1 --------------------------------------------------------------


def test_poisoned_schema1_cannot_change_what_the_store_returns(tmp_path: Path) -> None:
    good = b.image_manifest()
    poison = poisoned_schema1(good)
    store = ManifestStore(tmp_path)
    hostile, _ = make_client(
        lambda r: serve(poison, mt.DOCKER_SCHEMA1_SIGNED, good.digest), store=store
    )

    with pytest.raises(DigestMismatchError, match="payload"):
        hostile.fetch_tag(EVIL, "evil")

    assert store.get(good.digest) is None
    honest, _ = make_client(lambda r: manifest_response(r, good), store=store)
    assert honest.fetch_tag(REPO, "latest") == good
    assert honest.manifest_gets["127.0.0.1:5999"] == 1


def test_signature_wrapped_around_another_manifest_is_refused(tmp_path: Path) -> None:
    # The payload is exactly the image manifest and the document shows the same fields, but it
    # is not a schema 1 manifest: served as signed schema 1 it would be analysed as one.
    good = b.image_manifest()
    cut = good.data.rindex(b"}")
    protected = _b64url(
        json.dumps({"formatLength": cut, "formatTail": _b64url(good.data[cut:])}).encode()
    )
    signature = json.dumps({"protected": protected, "header": {}, "signature": "x"}).encode()
    wrapped = good.data[:cut] + b', "signatures": [' + signature + b"]" + good.data[cut:]
    client, _ = make_client(lambda r: serve(wrapped, mt.DOCKER_SCHEMA1_SIGNED, good.digest))

    with pytest.raises(DigestMismatchError, match="no schema 1"):
        client.get_manifest(EVIL, "evil")


def test_store_refuses_and_drops_a_poisoned_entry(tmp_path: Path) -> None:
    good = b.image_manifest()
    poison = Manifest(good.digest, mt.DOCKER_SCHEMA1_SIGNED, poisoned_schema1(good))
    store = ManifestStore(tmp_path)

    with pytest.raises(DataError):
        store.put(poison)
    hex_digest = good.digest.split(":", 1)[1]
    (tmp_path / "sha256").mkdir()
    (tmp_path / "sha256" / hex_digest).write_bytes(poison.data)
    (tmp_path / "sha256" / f"{hex_digest}.type").write_text(mt.DOCKER_SCHEMA1_SIGNED)

    assert store.get(good.digest) is None
    assert not (tmp_path / "sha256" / hex_digest).exists()


def test_real_signed_schema1_is_still_kept_and_read_back(tmp_path: Path) -> None:
    signed = b.schema1_signed()
    store = ManifestStore(tmp_path)
    client, _ = make_client(lambda r: manifest_response(r, signed), store=store)

    assert client.fetch_tag(REPO, "old").digest == signed.digest
    assert store.get(signed.digest) == signed


# Slow drip ---------------------------------------------------------------------------------------


class Drip(httpx.SyncByteStream):
    """One byte every `pause` seconds, `count` times."""

    def __init__(self, pause: float, count: int) -> None:
        self.pause, self.count, self.sent = pause, count, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.count):
            time.sleep(self.pause)
            self.sent += 1
            yield b" "


def test_slow_drip_tag_list_stops_at_the_deadline() -> None:
    drip = Drip(0.05, 400)
    client, _ = make_client(lambda r: httpx.Response(200, stream=drip))
    client.deadline = 0.5
    started = time.monotonic()

    with pytest.raises(TransportError, match="deadline"):
        client.list_tags(REPO)

    assert time.monotonic() - started < 3
    assert drip.sent < 40


def test_blob_claiming_an_enormous_size_gets_a_bounded_allowance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A manifest may claim any size; the extra time it earns is capped (here at half a second).
    monkeypatch.setattr(client_module, "MAX_BLOB_ALLOWANCE", 0.5)
    drip = Drip(0.05, 400)
    client, _ = make_client(lambda r: httpx.Response(200, stream=drip))
    client.deadline = 0.3
    started = time.monotonic()

    with pytest.raises(TransportError, match="deadline"):
        client.verify_blob(REPO, b.digest_of("huge"), 10**15)

    assert time.monotonic() - started < 3
    assert drip.sent < 40


def test_slow_drip_is_a_network_observation_and_the_run_goes_on() -> None:
    good = b.image_manifest()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tags/list"):
            return httpx.Response(200, stream=Drip(0.05, 400))
        return manifest_response(request, good)

    client, _ = make_client(handler)
    client.deadline = 0.3
    prober = Prober(client, "run", ["linux/amd64"])

    assert prober.list_tags(REPO) == []
    probe = prober.probe_tag(REPO, "latest")

    listing = prober.run.observations[0]
    assert (listing.tag, listing.outcome, listing.error_class) == ("", "fail", "network")
    assert probe.analysis is not None and probe.analysis.digest == good.digest


class HeaderDrip:
    """A loopback HTTP server that answers /v2/ at once and any other path with headers sent
    one byte at a time, for ever (until it is stopped)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(4096)
                if not chunk or chunk[:1] == b"\x16":  # closed, or a TLS handshake
                    return
                data += chunk
            if data.startswith(b"GET /v2/ "):
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                )
                return
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self.stopped.wait(0.1):
                    connection.sendall(b"a")
            except OSError:
                return

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()


def test_headers_sent_a_byte_at_a_time_stop_at_the_deadline() -> None:
    server = HeaderDrip()
    endpoint = f"127.0.0.1:{server.port}"
    client = client_module.RegistryClient(insecure=[endpoint], deadline=1.0, timeout=5.0)
    repository = parse_repository(f"{endpoint}/slow/app")
    try:
        started = time.monotonic()
        with pytest.raises(TransportError, match="deadline"):
            client.list_tags(repository)
        assert time.monotonic() - started < 4
        # The stalled connection was given up; the fresh client is bounded the same way.
        started = time.monotonic()
        with pytest.raises(TransportError, match="deadline"):
            client.list_tags(repository)
        assert time.monotonic() - started < 4
    finally:
        client.close()
        server.stop()


# Token answer size -------------------------------------------------------------------------------


class Endless(httpx.SyncByteStream):
    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"token":"'
        for _ in range(2000):
            self.sent += 1 << 16
            yield b"A" * (1 << 16)


def test_huge_token_answer_is_refused_without_reading_it_all() -> None:
    endless = Endless()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, stream=endless)
        challenge = 'Bearer realm="https://127.0.0.1:5999/token",service="evil"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    client, _ = make_client(handler)

    with pytest.raises(ProtocolError, match="64 KiB"):
        client.list_tags(REPO)

    assert endless.sent <= 2 * (1 << 16)


# Secrets in registry text ------------------------------------------------------------------------


def echoing_registry(message: str) -> object:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": TOKEN})
        authorization = request.headers.get("Authorization", "")
        if not authorization:
            challenge = 'Bearer realm="https://127.0.0.1:5999/token",service="evil"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        text = message.replace("{auth}", authorization).replace("{token}", TOKEN)
        return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": text}]})

    return handler


@pytest.mark.parametrize(
    ("message", "secrets"),
    [
        (
            "see https://user:PWINURL@cdn.example/x?X-Amz-Signature=AMZSECRETSIG&token=TOKSECRET",
            ["PWINURL", "AMZSECRETSIG", "TOKSECRET"],
        ),
        ("denied for {auth}", [TOKEN]),
        ("your token {token} is not enough", [TOKEN]),
    ],
)
def test_registry_messages_are_recorded_without_secrets(message: str, secrets: list[str]) -> None:
    client, _ = make_client(echoing_registry(message))  # type: ignore[arg-type]

    run = probe_repository(client, REPO, "run", ["linux/amd64"], tags=["latest"])
    listing = probe_repository(client, REPO, "run", ["linux/amd64"])

    recorded = [o.message for o in run.observations + listing.observations]
    assert all(o.outcome == "fail" for o in run.observations + listing.observations)
    assert "(HTTP 403, DENIED)" in listing.observations[0].message
    for secret in secrets:
        assert not any(secret in text for text in recorded)


def test_token_at_the_cut_of_a_long_message_is_redacted() -> None:
    # The message is shortened for the record; a token cut in half there must not show its head.
    client, _ = make_client(echoing_registry("x" * 180 + " token {token} refused"))  # type: ignore[arg-type]

    listing = probe_repository(client, REPO, "run", ["linux/amd64"])

    assert listing.observations and all(o.outcome == "fail" for o in listing.observations)
    assert all("token" in o.message for o in listing.observations)
    assert not any(TOKEN[:8] in o.message for o in listing.observations)


def test_password_echoed_by_a_basic_registry_is_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "Authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        message = "password hunter2-secret refused"
        return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": message}]})

    environ = {
        "HOME": "/nonexistent",
        "PULL_MATRIX_USERNAME_127_0_0_1_5999": "me",
        "PULL_MATRIX_PASSWORD_127_0_0_1_5999": "hunter2-secret",
    }
    client, _ = make_client(handler, environ=environ)

    run = probe_repository(client, REPO, "run", ["linux/amd64"])

    assert run.observations[0].outcome == "fail"
    assert "(HTTP 403, DENIED)" in run.observations[0].message
    assert "hunter2-secret" not in run.observations[0].message


# Deep nesting ------------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_protocol_error_not_a_recursion_error() -> None:
    with pytest.raises(ProtocolError, match="deeper"):
        load_json(b"[" * 100_000 + b"]" * 100_000, "manifest")
    assert load_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, "x") is not None
    assert load_json(
        b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', "x"
    )


def test_deeply_nested_manifest_is_a_failed_tag_and_the_probe_goes_on() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    digest = "sha256:" + hashlib.sha256(deep).hexdigest()
    good = b.image_manifest()

    def handler(request: httpx.Request) -> httpx.Response:
        if "deepnest" in request.url.path or digest in request.url.path:
            return serve(deep, mt.OCI_MANIFEST, digest)
        if "/blobs/" in request.url.path:
            return httpx.Response(200)
        return manifest_response(request, good)

    client, _ = make_client(handler)
    run = probe_repository(client, REPO, "run", ["linux/amd64"], tags=["deepnest", "latest"])

    outcomes = {o.tag: (o.outcome, o.error_class) for o in run.observations}
    assert outcomes["deepnest"][0] == "fail"
    assert outcomes["latest"] == ("ok", "ok")


def test_deeply_nested_error_body_keeps_the_status() -> None:
    deep = b"[" * 60_000 + b"]" * 4_000
    client, _ = make_client(lambda r: httpx.Response(404, content=deep))

    run = probe_repository(client, REPO, "run", ["linux/amd64"])

    assert run.observations[0].outcome == "fail"
    assert run.observations[0].http_status == 404


# Names that leave the repository -----------------------------------------------------------------


@pytest.mark.parametrize("reference", ["../../../../v2/other/x", "a?b=c", "<script>", "a/b"])
def test_invalid_tag_is_refused_before_any_request(reference: str) -> None:
    client, recorder = make_client(lambda r: httpx.Response(500))

    with pytest.raises(ReferenceError_):
        client.get_manifest(REPO, reference)
    with pytest.raises(ReferenceError_):
        client.head_manifest(REPO, reference)

    assert recorder.requests == []


@pytest.mark.parametrize("password", ["pw-SECRET", "LONG" * 80])
def test_bad_reference_error_does_not_echo_a_password(password: str) -> None:
    with pytest.raises(ReferenceError_) as caught:
        parse_reference(f"user:{password}@127.0.0.1:5999/good/app")

    assert password[:8] not in str(caught.value)
    assert "127.0.0.1:5999/good/app" in str(caught.value)


# sha512 ------------------------------------------------------------------------------------------


def test_sha512_docker_content_digest_is_verified_with_sha512() -> None:
    good = b.image_manifest()
    sha512 = "sha512:" + hashlib.sha512(good.data).hexdigest()
    client, _ = make_client(lambda r: serve(good.data, good.media_type, sha512))

    assert client.get_manifest(REPO, "latest").digest == good.digest

    wrong = "sha512:" + hashlib.sha512(b"other").hexdigest()
    liar, _ = make_client(lambda r: serve(good.data, good.media_type, wrong))
    with pytest.raises(DigestMismatchError):
        liar.get_manifest(REPO, "latest")


def test_sha512_blob_is_verified_with_sha512() -> None:
    content = b"layer bytes"
    digest = "sha512:" + hashlib.sha512(content).hexdigest()
    client, _ = make_client(lambda r: httpx.Response(200, content=content))

    assert client.verify_blob(REPO, digest, len(content)) == len(content)
    assert client.read_blob(REPO, digest, len(content)) == content


# Oversized tag pages -----------------------------------------------------------------------------


def test_oversized_later_tag_page_keeps_the_tags_read_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "MAX_PAGE_BYTES", 1000)

    def handler(request: httpx.Request) -> httpx.Response:
        if "last=" not in str(request.url):
            link = '</v2/good/app/tags/list?n=2&last=b>; rel="next"'
            return httpx.Response(200, json={"tags": ["a", "b"]}, headers={"Link": link})
        return httpx.Response(200, json={"tags": ["x" * 100] * 50})

    client, _ = make_client(handler, page_size=2)

    listing = client.list_tags(REPO)

    assert listing.tags == ["a", "b"]
    assert "page 2" in listing.incomplete and "larger than" in listing.incomplete


def test_oversized_first_tag_page_says_what_happened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_PAGE_BYTES", 1000)
    client, _ = make_client(lambda r: httpx.Response(200, json={"tags": ["x" * 100] * 50}))
    prober = Prober(client, "run", ["linux/amd64"])

    assert prober.list_tags(REPO) == []

    observation = prober.run.observations[0]
    assert observation.outcome == "fail"
    assert "tag list page larger than" in observation.message


def test_redacted_messages_keep_tag_list_paging_but_no_signed_query() -> None:
    text = (
        "at http://h/v2/x/tags/list?n=100&last=abc, "
        "see https://u:pw@s3.example/b?n=1&X-Amz-Signature=SIG, Basic dXNlcjpwYXNzd29yZA=="
    )

    redacted = redact_message(text, ["abc-not-here"])

    assert "tags/list?n=100&last=abc" in redacted
    assert "https://s3.example/b?REDACTED" in redacted
    assert not any(s in redacted for s in ("pw", "SIG", "dXNlcjpwYXNzd29yZA"))


def test_redaction_leaves_prose_about_authentication_alone() -> None:
    text = "basic authentication required; Bearer token expired"

    assert redact_message(text) == text
    assert redact_message("Bearer abcDEF12") == "Bearer REDACTED"


def test_blob_download_gets_time_by_its_size_but_not_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "MIN_BLOB_RATE", 20)
    content = b" " * 10
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    client, _ = make_client(lambda r: httpx.Response(200, stream=Drip(0.05, 10)))
    client.deadline = 0.2

    assert client.verify_blob(REPO, digest, 10) == 10

    endless, _ = make_client(lambda r: httpx.Response(200, stream=Drip(0.05, 400)))
    endless.deadline = 0.2
    with pytest.raises(TransportError, match="deadline"):
        endless.verify_blob(REPO, digest, 10)


def test_depth_check_is_fast_on_an_unterminated_string_of_escapes() -> None:
    started = time.monotonic()

    with pytest.raises(ProtocolError):
        load_json(b'"' + b'\\"' * 200_000, "manifest")

    assert time.monotonic() - started < 2


def test_redaction_is_fast_on_long_dotted_text() -> None:
    started = time.monotonic()

    redact_message("a." * 20_000 + " https://u:p@h/x?sig=1")

    assert time.monotonic() - started < 1
