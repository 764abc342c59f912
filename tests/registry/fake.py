"""A scripted registry behind httpx.MockTransport, for protocol cases a real one cannot make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from matrix.registry.client import RegistryClient, RetryPolicy
from matrix.registry.credentials import CredentialStore
from matrix.registry.manifest import Manifest
from matrix.registry.store import ManifestStore

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """Every request the client sent, and the seconds it was told to sleep."""

    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for r in self.requests if r.method == method and path_part in r.url.path)


def make_client(
    handler: Handler,
    *,
    store: ManifestStore | None = None,
    environ: dict[str, str] | None = None,
    attempts: int = 3,
    page_size: int = 100,
) -> tuple[RegistryClient, Recorder]:
    recorder = Recorder()

    def recording(request: httpx.Request) -> httpx.Response:
        recorder.requests.append(request)
        return handler(request)

    client = RegistryClient(
        transport=httpx.MockTransport(recording),
        credentials=CredentialStore(environ=environ or {"HOME": "/nonexistent"}),
        store=store,
        retry=RetryPolicy(
            attempts=attempts, initial_wait=0.5, max_wait=5, sleep=recorder.sleeps.append
        ),
        page_size=page_size,
    )
    return client, recorder


def manifest_response(
    request: httpx.Request, manifest: Manifest, digest: str | None = None
) -> httpx.Response:
    headers = {
        "Content-Type": manifest.media_type,
        "Docker-Content-Digest": digest or manifest.digest,
        "Content-Length": str(manifest.size),
    }
    body = b"" if request.method == "HEAD" else manifest.data
    return httpx.Response(200, headers=headers, content=body)
