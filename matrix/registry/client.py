"""A read-only client for the distribution API: tag lists, manifests and blobs.

One client serves any number of registries. It speaks HTTPS (HTTP/2 where the registry offers
it), or plain HTTP for hosts named as insecure; answers the registry's authentication
challenge (see `auth`); retries 429, 5xx and broken connections a bounded number of times,
honouring `Retry-After`; and turns every other failure into an error from `matrix.errors` that
keeps the HTTP status, the registry's error codes and a URL without secrets.

Every request, with its body, must be done within `deadline` seconds (httpx's own time-out
applies to each read only), else it is a TransportError. Text a registry sends back in an error
is shortened, and URLs, credentials and the client's own tokens and passwords are removed from it.

Docker Hub counts manifest GETs against its pull limit, and HEADs not. So a tag is resolved with
HEAD, and the manifest is fetched with GET only when its digest is not yet in the manifest store:
a second run over unchanged tags makes no manifest GET at all. `manifest_gets` counts the GETs
per registry.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from matrix import __version__, mediatypes
from matrix.errors import (
    AuthError,
    DigestMismatchError,
    MatrixError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    ReferenceError_,
    RegistryError,
    TransportError,
    redact_message,
    redact_url,
)
from matrix.reference import DIGEST_PATTERN, Repository, is_valid_tag
from matrix.registry.auth import Authenticator
from matrix.registry.credentials import CredentialStore
from matrix.registry.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    decided_media_type,
    hasher_for,
    matches,
    verify,
)
from matrix.registry.store import ManifestStore
from matrix.registry.wire import DEADLINE, load_json, read_body

log = logging.getLogger(__name__)

USER_AGENT = f"pull-matrix/{__version__}"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TAGS_PER_PAGE = 100
# Tag lists are followed for at most this many pages and tags; a repository with more is listed
# only up to there, with a warning, rather than paged through without end.
MAX_TAG_PAGES = 200
MAX_TAGS = 10_000
MAX_PAGE_BYTES = 8 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# Seconds a request may take in all, body included (a slow-drip server could take hours).
DEFAULT_DEADLINE = 120.0
# Bytes per second below which a blob download counts as stalled (the deadline grows with size).
MIN_BLOB_RATE = 256 * 1024
# The most extra time a blob download gets for its size, whatever size a manifest claims.
MAX_BLOB_ALLOWANCE = 30 * 60.0

_RETRIED_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.ReadTimeout,
    httpx.RemoteProtocolError,
    httpx.WriteError,
    httpx.PoolTimeout,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that got 429, 5xx or a broken connection."""

    attempts: int = 4
    initial_wait: float = 1.0
    max_wait: float = 30.0
    sleep: Callable[[float], None] = time.sleep


@dataclass
class RateLimit:
    """What the registry said about its pull limit in its last manifest answer."""

    limit: int | None = None
    remaining: int | None = None
    window_s: int | None = None
    source: str = ""


@dataclass(frozen=True)
class Descriptor:
    digest: str
    media_type: str
    size: int | None


@dataclass
class TagList:
    """The tags of a repository; `incomplete` says why the list stops early, if it does."""

    tags: list[str] = field(default_factory=list)
    incomplete: str = ""
    pages: int = 0
    skipped: int = 0


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def parse_ratelimit(value: str | None) -> tuple[int | None, int | None]:
    """`100;w=21600` -> (100, 21600); unreadable parts are None."""
    if not value:
        return None, None
    head, *params = value.split(";")
    try:
        amount: int | None = int(head.strip())
    except ValueError:
        amount = None
    window = None
    for param in params:
        key, _, number = param.strip().partition("=")
        if key == "w" and number.isdigit():
            window = int(number)
    return amount, window


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (now if now is not None else time.time()), 0.0)


def error_codes(body: bytes) -> tuple[tuple[str, ...], str]:
    """The distribution error codes and the first message in an error body (not yet redacted)."""
    try:
        document = load_json(body, "error answer")
    except ProtocolError:
        return (), ""
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return (), ""
    codes = tuple(
        mediatypes.safe_text(e["code"], 40)
        for e in errors
        if isinstance(e, dict) and isinstance(e.get("code"), str)
    )
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    message = first.get("message") if isinstance(first.get("message"), str) else ""
    # Whole: shortening text before it is redacted could cut a secret so it is no longer found.
    return codes, message or ""


_LINK = re.compile(r"<([^>]*)>\s*((?:;[^,;]*)*)")
_REL_NEXT = re.compile(r';\s*rel\s*=\s*"?next"?\s*(?:;|$)', re.IGNORECASE)


def next_link(headers: httpx.Headers, current: str) -> str | None:
    """The absolute URL of the `Link: <…>; rel="next"` header, if there is one."""
    for value in headers.get_list("link"):
        for match in _LINK.finditer(value):
            if _REL_NEXT.search(match.group(2)):
                return urljoin(current, match.group(1).strip())
    return None


class RegistryClient:
    """Read-only access to the repositories of any number of registries."""

    def __init__(
        self,
        *,
        insecure: Iterable[str] = (),
        credentials: CredentialStore | None = None,
        store: ManifestStore | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        page_size: int = TAGS_PER_PAGE,
        deadline: float | None = DEFAULT_DEADLINE,
    ) -> None:
        self.insecure = {host.lower() for host in insecure}
        self.store = store
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.deadline = deadline
        self.manifest_gets: Counter[str] = Counter()
        self.manifest_heads: Counter[str] = Counter()
        self.ratelimits: dict[str, RateLimit] = {}
        options: dict[str, Any] = {"transport": transport} if transport else {"http2": True}
        settings: dict[str, Any] = {
            "timeout": timeout,
            "follow_redirects": True,
            "headers": {"User-Agent": USER_AGENT},
            **options,
        }
        self._settings = settings
        self._http = httpx.Client(**settings)
        self._sender = ThreadPoolExecutor(max_workers=4, thread_name_prefix="matrix-registry")
        # For hosts named insecure: TLS without certificate checks, tried before plain HTTP,
        # as Docker treats an insecure registry. Never used for any other host.
        self._unverified = httpx.Client(verify=False, **settings)
        self._schemes: dict[str, str] = {}
        credential_store = credentials or CredentialStore()
        self._auth = Authenticator(credential_store.lookup, self._transmit)

    def redact(self, text: str) -> str:
        """`text` without URL secrets, credentials, or any token or password of this client."""
        return redact_message(text, self._auth.secrets())

    def close(self) -> None:
        self._http.close()
        self._unverified.close()
        self._sender.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Transport ------------------------------------------------------------------------------

    def base_url(self, repository: Repository) -> str:
        endpoint = repository.endpoint
        insecure = endpoint.lower() in self.insecure or repository.registry.lower() in self.insecure
        if not insecure:
            return f"https://{endpoint}"
        if endpoint not in self._schemes:
            self._schemes[endpoint] = self._insecure_scheme(endpoint)
        return f"{self._schemes[endpoint]}://{endpoint}"

    def _insecure_scheme(self, endpoint: str) -> str:
        """`https` if the insecure host speaks TLS (certificate unchecked), else `http`."""
        try:
            self._unverified.get(f"https://{endpoint}/v2/", timeout=5.0).close()
        except httpx.TransportError:
            log.debug("%s does not speak TLS; using plain HTTP", endpoint)
            return "http"
        return "https"

    def _client_for(self, request: httpx.Request) -> httpx.Client:
        host = request.url.netloc.decode("ascii").lower()
        if request.url.scheme == "https" and host in {e.lower() for e in self._schemes}:
            return self._unverified
        return self._http

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        backoff = self.retry.initial_wait * 2 ** (state.attempt_number - 1)
        if isinstance(error, _Retryable):
            after = parse_retry_after(error.response.headers.get("retry-after"))
            if after is not None:
                backoff = after
        return min(backoff, self.retry.max_wait)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        request = state.args[0] if state.args else None
        what = error.response.status_code if isinstance(error, _Retryable) else type(error).__name__
        url = redact_url(str(request.url)) if isinstance(request, httpx.Request) else "?"
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s from %s; retrying in %.1fs", what, url, wait)

    def _transmit(self, request: httpx.Request) -> httpx.Response:
        """Send with retries; the final answer is returned even when it is a 429 or 5xx.

        The response is streamed: callers read it with `_read` (which closes it).
        """
        retrying = Retrying(
            stop=stop_after_attempt(max(self.retry.attempts, 1)),
            wait=self._wait,
            retry=retry_if_exception_type((_Retryable, *_RETRIED_ERRORS)),
            before_sleep=self._log_retry,
            sleep=self.retry.sleep,
            reraise=True,
        )
        try:
            return retrying(self._transmit_once, request)
        except _Retryable as exc:
            return exc.response
        except httpx.HTTPError as exc:
            url = redact_url(str(request.url))
            raise TransportError(f"{request.method} {url} failed: {type(exc).__name__}") from exc

    def _transmit_once(self, request: httpx.Request) -> httpx.Response:
        if self.deadline is None:
            response = self._client_for(request).send(request, stream=True)
        else:
            response = self._send_by_deadline(request, time.monotonic() + self.deadline)
        if response.status_code in RETRY_STATUSES:
            raise _Retryable(_buffered(response))
        return response

    def _send_by_deadline(self, request: httpx.Request, deadline: float) -> httpx.Response:
        """Send `request`, with status line and headers due by `deadline` (a monotonic time).

        httpx bounds each read, not the whole answer: a server sending its headers a byte at a
        time could hold the request open for ever. The request runs on a worker thread; when
        the deadline passes first, the client's connections are closed (which ends the stalled
        read) and a fresh client takes its place.
        """
        client = self._client_for(request)
        future = self._sender.submit(client.send, request, stream=True)
        try:
            response = future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FuturesTimeout as exc:
            future.add_done_callback(_close_late_response)
            self._replace(client)
            url = redact_url(str(request.url))
            raise TransportError(
                f"{request.method} {url} failed: no answer by the deadline"
            ) from exc
        response.extensions[DEADLINE] = deadline
        return response

    def _replace(self, client: httpx.Client) -> None:
        settings = dict(self._settings)
        if client is self._unverified:
            settings["verify"] = False
        fresh = httpx.Client(**settings)
        if client is self._unverified:
            self._unverified = fresh
        else:
            self._http = fresh
        client.close()

    def _request(
        self, method: str, url: str, repository: Repository, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """One authenticated request; a 401 is answered once, with a fresh token."""
        scope = f"repository:{repository.name}:pull"
        host = repository.registry
        headers = dict(headers or {})
        authorization = self._auth.authorization(host, scope)
        if authorization:
            headers["Authorization"] = authorization
        response = self._transmit(self._http.build_request(method, url, headers=headers))
        if response.status_code != 401:
            return response
        read_body(response, MAX_ERROR_BYTES, strict=False)
        headers["Authorization"] = self._auth.answer(host, scope, response)
        return self._transmit(self._http.build_request(method, url, headers=headers))

    def _error(self, response: httpx.Response, what: str) -> RegistryError:
        body = b"" if response.request.method == "HEAD" else _error_body(response)
        codes, message = error_codes(body)
        message = mediatypes.safe_text(self.redact(message), 200)
        status = response.status_code
        text = f"{what}: {message}" if message else what
        url = str(response.request.url)
        if status in (401, 403):
            return AuthError(text, status=status, codes=codes, url=url)
        if status == 404:
            return NotFoundError(text, status=status, codes=codes, url=url)
        if status == 429:
            after = parse_retry_after(response.headers.get("retry-after"))
            return RateLimitError(text, retry_after=after, status=status, codes=codes, url=url)
        temporary = status >= 500 or status == 408
        return RegistryError(text, status=status, codes=codes, url=url, temporary=temporary)

    def _note_ratelimit(self, repository: Repository, response: httpx.Response) -> None:
        limit, window = parse_ratelimit(response.headers.get("ratelimit-limit"))
        remaining, _ = parse_ratelimit(response.headers.get("ratelimit-remaining"))
        source = response.headers.get("docker-ratelimit-source", "")
        if limit is None and remaining is None and not source:
            return
        self.ratelimits[repository.registry] = RateLimit(
            limit, remaining, window, mediatypes.safe_text(source, 80)
        )

    # Tags -----------------------------------------------------------------------------------

    def list_tags(self, repository: Repository) -> TagList:
        """Every tag, following `Link` pagination; stops on loops and at MAX_TAG_PAGES/MAX_TAGS.

        A `Link` to another host is not followed. Tags that are not valid tag names are
        skipped (and counted), since they cannot be pulled by any engine.
        """
        url = f"{self.base_url(repository)}/v2/{repository.name}/tags/list?n={self.page_size}"
        origin = urlsplit(url).netloc
        result = TagList()
        seen_tags: set[str] = set()
        seen_urls: set[str] = set()
        seen_last: set[str] = set()
        while True:
            if result.pages >= MAX_TAG_PAGES:
                result.incomplete = f"stopped after {MAX_TAG_PAGES} pages"
                break
            seen_urls.add(url)
            try:
                page = self._tag_page(repository, url)
            except MatrixError as exc:
                if not result.pages:
                    raise
                # The pages read so far are kept; the listing says where and why it stopped.
                result.incomplete = f"page {result.pages + 1} failed: {self.redact(str(exc))}"
                break
            result.pages += 1
            fresh = [tag for tag in page.tags if tag not in seen_tags]
            result.skipped += page.skipped
            if page.tags and not fresh:
                result.incomplete = "the registry sent a page of tags it had sent before"
                break
            seen_tags.update(fresh)
            result.tags.extend(fresh)
            if len(result.tags) >= MAX_TAGS:
                result.tags = result.tags[:MAX_TAGS]
                result.incomplete = f"stopped at {MAX_TAGS} tags"
                break
            following = page.next_url
            if following is None:
                break
            last = parse_qs(urlsplit(following).query).get("last", [""])[0]
            if following in seen_urls or (last and last in seen_last):
                result.incomplete = "the registry's next page link points back to a page seen"
                break
            if urlsplit(following).netloc != origin:
                result.incomplete = "the registry's next page link points to another host"
                break
            if last:
                seen_last.add(last)
            url = following
        if result.incomplete:
            log.warning("tag list of %s is incomplete: %s", repository, result.incomplete)
        log.info("listed %d tags of %s in %d pages", len(result.tags), repository, result.pages)
        return result

    def _tag_page(self, repository: Repository, url: str) -> _TagPage:
        response = self._request("GET", url, repository)
        if response.status_code != 200:
            raise self._error(response, f"tag list of {repository}")
        try:
            body = read_body(response, MAX_PAGE_BYTES)
        except ProtocolError as exc:
            megabytes = MAX_PAGE_BYTES // 2**20
            raise ProtocolError(
                f"tag list page larger than {megabytes} MiB (asked for {self.page_size} tags)",
                url=url,
            ) from exc
        document = load_json(body, "tag list", url)
        raw = document.get("tags") if isinstance(document, dict) else None
        if raw is not None and not isinstance(raw, list):
            raise ProtocolError("tag list has no list of tags", url=url)
        tags = [tag for tag in raw or [] if isinstance(tag, str) and is_valid_tag(tag)]
        return _TagPage(tags, len(raw or []) - len(tags), next_link(response.headers, url))

    # Manifests ------------------------------------------------------------------------------

    def _manifest_url(self, repository: Repository, reference: str) -> str:
        if not (is_valid_tag(reference) or DIGEST_PATTERN.match(reference)):
            shown = mediatypes.safe_text(reference, 80)
            raise ReferenceError_(f"{shown!r} is neither a tag nor a digest")
        path = f"/v2/{quote(repository.name)}/manifests/{quote(reference, safe=':')}"
        return self.base_url(repository) + path

    def head_manifest(self, repository: Repository, reference: str) -> Descriptor:
        """Resolve a tag or digest with HEAD (not counted against Docker Hub's pull limit)."""
        url = self._manifest_url(repository, reference)
        response = self._request("HEAD", url, repository, {"Accept": mediatypes.ACCEPT})
        response.close()
        self.manifest_heads[repository.registry] += 1
        self._note_ratelimit(repository, response)
        if response.status_code != 200:
            raise self._error(response, f"manifest {repository.with_tag(reference)}")
        digest = response.headers.get("docker-content-digest", "")
        if digest and not DIGEST_PATTERN.match(digest):
            raise ProtocolError("the registry sent an invalid Docker-Content-Digest", url=url)
        length = response.headers.get("content-length", "")
        size = int(length) if length.isdigit() else None
        media_type = mediatypes.base(response.headers.get("content-type", ""))
        return Descriptor(digest, media_type, size)

    def get_manifest(self, repository: Repository, reference: str, expected: str = "") -> Manifest:
        """GET a manifest and verify its digest against every digest that names it."""
        url = self._manifest_url(repository, reference)
        response = self._request("GET", url, repository, {"Accept": mediatypes.ACCEPT})
        self._note_ratelimit(repository, response)
        if response.status_code != 200:
            raise self._error(response, f"manifest {repository.with_tag(reference)}")
        self.manifest_gets[repository.registry] += 1
        data = read_body(response, MAX_MANIFEST_BYTES)
        served = mediatypes.base(response.headers.get("content-type", ""))
        announced = response.headers.get("docker-content-digest", "")
        requested = reference if DIGEST_PATTERN.match(reference) else ""
        digest = verify(data, served, requested, expected, announced, url=url)
        # The document, not the Content-Type, says what kind of manifest this is.
        manifest = Manifest(digest, decided_media_type(data, served), data)
        log.debug("fetched manifest %s of %s (%d bytes)", digest, repository, len(data))
        if self.store is not None:
            self.store.put(manifest)
        return manifest

    def manifest(self, repository: Repository, digest: str) -> Manifest:
        """The manifest with this digest: from the store if it is there, else by GET."""
        if self.store is not None:
            stored = self.store.get(digest)
            if stored is not None:
                return stored
        return self.get_manifest(repository, digest)

    def fetch_tag(self, repository: Repository, tag: str) -> Manifest:
        """The manifest a tag points at now: HEAD, then the store or a GET by digest."""
        head = self.head_manifest(repository, tag)
        if not head.digest:
            # Without a digest from HEAD only a GET by tag can tell what the tag holds.
            return self.get_manifest(repository, tag)
        return self.manifest(repository, head.digest)

    # Blobs ----------------------------------------------------------------------------------

    def _blob_url(self, repository: Repository, digest: str) -> str:
        if not DIGEST_PATTERN.match(digest):
            raise ProtocolError(f"{mediatypes.safe_text(digest, 80)!r} is not a digest")
        path = f"/v2/{quote(repository.name)}/blobs/{quote(digest, safe=':')}"
        return self.base_url(repository) + path

    def _blob_error(
        self, response: httpx.Response, repository: Repository, digest: str
    ) -> MatrixError:
        error = self._error(response, f"blob {digest} of {repository}")
        if isinstance(error, NotFoundError) and not error.codes:
            # A HEAD has no body to carry the code; a 404 on a blob means the blob is unknown.
            return NotFoundError(
                f"blob {digest} of {repository}", status=404, codes=("BLOB_UNKNOWN",),
                url=str(response.request.url),
            )  # fmt: skip
        return error

    def blob_size(self, repository: Repository, digest: str) -> int | None:
        """HEAD a blob: its size if the registry says, NotFoundError when it is missing."""
        response = self._request("HEAD", self._blob_url(repository, digest), repository)
        response.close()
        if response.status_code != 200:
            raise self._blob_error(response, repository, digest)
        length = response.headers.get("content-length", "")
        return int(length) if length.isdigit() else None

    def read_blob(self, repository: Repository, digest: str, size: int) -> bytes:
        """A small blob (an image config), verified against its digest."""
        if size > MAX_CONFIG_BYTES:
            raise ProtocolError(f"blob {digest} is too large to read ({size} bytes)")
        # Configs are content-addressed like manifests, so the store keeps them too.
        stored = self.store.get(digest) if self.store is not None else None
        # Only bytes that hash to the digest themselves (not a signed schema 1 payload).
        if stored is not None and matches(stored.data, digest):
            return stored.data
        url = self._blob_url(repository, digest)
        response = self._request("GET", url, repository)
        if response.status_code != 200:
            raise self._blob_error(response, repository, digest)
        data = read_body(response, MAX_CONFIG_BYTES)
        if not matches(data, digest, url):
            raise DigestMismatchError(f"blob content does not match {digest}", url=url)
        if self.store is not None and digest.startswith("sha256:"):
            try:
                self.store.put(Manifest(digest, "application/octet-stream", data))
            except MatrixError as exc:
                log.warning("blob %s not kept in the manifest store: %s", digest, exc)
        return data

    def verify_blob(self, repository: Repository, digest: str, size: int | None) -> int:
        """Download a blob in full, checking its digest and size; return the bytes read."""
        url = self._blob_url(repository, digest)
        response = self._request("GET", url, repository)
        if response.status_code != 200:
            raise self._blob_error(response, repository, digest)
        hasher, count = hasher_for(digest, url), 0
        deadline = response.extensions.get(DEADLINE)
        if deadline is not None:
            # A layer may be gigabytes: it gets the deadline plus time at the slowest rate allowed.
            length = response.headers.get("content-length", "")
            expected = size or (int(length) if length.isdigit() else 0)
            deadline += min(expected / MIN_BLOB_RATE, MAX_BLOB_ALLOWANCE)
        try:
            for chunk in response.iter_bytes():
                hasher.update(chunk)
                count += len(chunk)
                if deadline is not None and time.monotonic() > deadline:
                    raise TransportError(f"download of {redact_url(url)} too slow: deadline passed")
        except httpx.HTTPError as exc:
            raise TransportError(f"download of {redact_url(url)} broke off") from exc
        finally:
            response.close()
        if size is not None and count != size:
            raise DigestMismatchError(f"blob {digest} has {count} bytes, not {size}", url=url)
        if f"{hasher.name}:{hasher.hexdigest()}" != digest:
            raise DigestMismatchError(f"blob content does not match {digest}", url=url)
        return count


@dataclass
class _TagPage:
    tags: list[str]
    skipped: int
    next_url: str | None


def _close_late_response(future: Future[httpx.Response]) -> None:
    """Close the answer to a request that was given up on, should it still arrive."""
    if not future.cancelled() and future.exception() is None:
        future.result().close()


def _buffered(response: httpx.Response) -> httpx.Response:
    """A copy of a streamed error answer with its (bounded) body in memory, to be read again."""
    body = _error_body(response)
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request
    )


def _error_body(response: httpx.Response) -> bytes:
    """The first MAX_ERROR_BYTES of an error answer; empty if it cannot be read in time."""
    try:
        return read_body(response, MAX_ERROR_BYTES, strict=False)
    except TransportError:
        return b""
