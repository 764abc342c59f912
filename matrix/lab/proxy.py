"""An HTTP proxy in front of a lab registry, in the role of Docker Hub or GHCR.

The proxy forwards the distribution API to its upstream registry unchanged (bodies are
streamed, never held in memory, except tag lists it pages) and adds what the public registry
does on top:

- a token endpoint at /token (the upstream registry runs with `auth: token` and names this
  endpoint as its realm, so the challenges clients see are the public registry's);
- repositories that do not exist look private to anonymous clients: their tokens grant
  nothing, so the registry answers 401, as Docker Hub and GHCR do;
- in the Docker Hub role, the pull limit: `ratelimit-limit`, `ratelimit-remaining` and
  `docker-ratelimit-source` headers on manifest answers, a count of successful manifest GETs
  per client address (HEAD requests are free, as on Hub) and `429 TOOMANYREQUESTS` once the
  limit is spent. Without a limit set, the headers advertise Hub's anonymous limit (100 per
  six hours) but nothing is refused;
- paging of tag lists: the registry behind the proxy (distribution 2.8) ignores `n` and
  sends every tag at once, so a `GET /v2/<name>/tags/list` with `n` (and perhaps `last`) is
  answered here from the full list, sorted, at most `n` tags after `last`, with a
  `Link: <…>; rel="next"` header while more remain. Without `n` the list passes through.

Tests steer it through a small control API under /_lab/:

    GET    /_lab/counters   counted requests per client, the limit, the faults in force
    POST   /_lab/faults     add faults: a JSON object or list of them (`matrix.lab.faults.Fault`)
    DELETE /_lab/faults     remove every fault
    POST   /_lab/limit      {"pulls": N or null, "window": seconds}: set or lift the pull limit
    POST   /_lab/reset      forget every count

Run it as `python -m matrix.lab.proxy --listen 127.0.0.1:5101 --upstream http://…`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import socket
import struct
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from matrix.errors import LabError
from matrix.lab.faults import RATE_WINDOW, Fault, ProxyState, limit_from_json
from matrix.lab.tokens import GHCR_SHAPE, HUB_SHAPE, Scope, TokenIssuer

log = logging.getLogger(__name__)

HUB_ROLE = "hub"
GHCR_ROLE = "ghcr"
CHUNK = 64 * 1024

# The distribution spec's repository name grammar; names outside it are never looked up.
REPOSITORY_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
INTERNAL_USER = "lab-proxy"
MANIFEST_PATH = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
TAGS_PATH = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
PAGINATION_NUMBER_INVALID = {
    "errors": [
        {"code": "PAGINATION_NUMBER_INVALID", "message": "invalid number of results requested"}
    ]
}
TOO_MANY_REQUESTS = {
    "errors": [
        {
            "code": "TOOMANYREQUESTS",
            "message": "You have reached your pull rate limit. You may increase the limit by "
            "authenticating and upgrading: https://www.docker.com/increase-rate-limit",
        }
    ]
}


@dataclass
class ProxyConfig:
    upstream: str
    role: str = HUB_ROLE
    issuer: TokenIssuer | None = None
    pull_limit: int | None = None
    window: int = RATE_WINDOW
    hide_unknown: bool = True


@dataclass(frozen=True)
class TagPageRequest:
    """What a client asked of a tag list: at most `size` tags after `last` ("" from the start)."""

    size: int
    last: str = ""


def tag_page_request(query: str) -> TagPageRequest | None:
    """The page a tag list query asks for; None without `n`. ValueError if `n` is no count."""
    params = parse_qs(query)
    if "n" not in params:
        return None
    size = params["n"][0]
    if not size.isascii() or not size.isdigit():
        raise ValueError(f"n is a number of tags, not {size!r}")
    return TagPageRequest(int(size), params.get("last", [""])[0])


def tag_page(tags: Sequence[str], request: TagPageRequest) -> tuple[list[str], str | None]:
    """The tags of one page, in lexical order, and the `last` of the next page if there is one."""
    ordered = sorted(set(tags))
    start = bisect_right(ordered, request.last) if request.last else 0
    page = ordered[start : start + request.size]
    more = bool(page) and start + len(page) < len(ordered)
    return page, page[-1] if more else None


def _listed_tags(body: bytes) -> tuple[str, list[str]] | None:
    """The repository name and tags of a tag list answer; None if it is not one."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        return None
    tags = document.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return None
    return document["name"], tags


def next_page_link(name: str, size: int, last: str) -> str:
    """The `Link` header value for the page after `last`, as a URL relative to the registry."""
    return f'</v2/{name}/tags/list?{urlencode({"n": size, "last": last})}>; rel="next"'


class _Handler(BaseHTTPRequestHandler):
    server: LabProxyServer
    protocol_version = "HTTP/1.1"

    # -- dispatch -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path.startswith("/_lab/"):
                self._control(path)
                return
            fault = self._take_fault(path)
            if fault is not None and fault.reset:
                self._reset_connection()
            elif fault is not None and fault.status is not None:
                self._drain_request_body()
                self._send_fault(fault)
            elif path == "/token" and self.command == "GET":
                self._answer_token(fault)
            elif self.command == "GET" and TAGS_PATH.match(path):
                self._answer_tag_list(path, fault)
            else:
                self._proxy(path, fault)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            # One broken exchange must not take the proxy down; the client sees a closed
            # connection and the log says why.
            log.warning("proxy failed on %s %s", self.command, path, exc_info=True)
            self.close_connection = True

    def _take_fault(self, path: str) -> Fault | None:
        fault = self.server.state.take_fault(self.command, path)
        if fault is None:
            return None
        log.info("%s %s %s: fault %s", self.client_address[0], self.command, path, fault.path)
        if fault.latency:
            time.sleep(fault.latency)
        return fault

    def log_message(self, format: str, *args: object) -> None:
        log.debug("proxy: " + format, *args)

    # -- token endpoint and control API ---------------------------------------------------

    def _answer_token(self, fault: Fault | None) -> None:
        issuer = self.server.config.issuer
        if issuer is None:
            self._send_json(404, {"errors": [{"code": "NOT_FOUND", "message": "no tokens"}]})
            return
        status, body = issuer.answer(urlsplit(self.path).query, self.headers.get("Authorization"))
        self._send_json(status, body, fault.headers if fault else None)

    def _control(self, path: str) -> None:
        state = self.server.state
        try:
            body = self._read_small_json()
            if path == "/_lab/counters" and self.command == "GET":
                self._send_json(200, state.snapshot())
            elif path == "/_lab/faults" and self.command == "POST":
                items = body if isinstance(body, list) else [body]
                faults = [Fault.from_json(item) for item in items]
                with state.lock:
                    state.faults.extend(faults)
                self._send_json(200, state.snapshot())
            elif path == "/_lab/faults" and self.command == "DELETE":
                with state.lock:
                    state.faults.clear()
                self._send_json(200, state.snapshot())
            elif path == "/_lab/limit" and self.command == "POST":
                pulls, window = limit_from_json(body, state.window)
                with state.lock:
                    state.pull_limit, state.window = pulls, window
                self._send_json(200, state.snapshot())
            elif path == "/_lab/reset" and self.command == "POST":
                with state.lock:
                    state.clients.clear()
                self._send_json(200, state.snapshot())
            else:
                self._send_json(404, {"error": f"no control endpoint {self.command} {path}"})
        except (ValueError, TypeError, AttributeError, re.error) as exc:
            self._send_json(400, {"error": str(exc)})

    def _read_small_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        if length > 1 << 20:
            self.close_connection = True
            raise ValueError("control requests take at most 1 MiB")
        return json.loads(self.rfile.read(length))

    # -- tag lists ------------------------------------------------------------------------

    def _answer_tag_list(self, path: str, fault: Fault | None) -> None:
        """Page the upstream's full tag list when the client asks for pages, else pass it on."""
        try:
            request = tag_page_request(urlsplit(self.path).query)
        except ValueError:
            self._drain_request_body()
            self._send_json(400, PAGINATION_NUMBER_INVALID, fault.headers if fault else None)
            return
        if request is None:
            self._proxy(path, fault)
            return

        upstream = self._forward(path, skip={"accept-encoding"})
        if upstream is None:
            return
        extra = dict(fault.headers) if fault else {}
        truncate = fault.truncate if fault else None
        try:
            if upstream.status_code != 200:
                self._relay(upstream, extra, truncate)
                return
            listed = _listed_tags(upstream.read())
            version = upstream.headers.get("Docker-Distribution-API-Version")
        finally:
            upstream.close()
        if listed is None:
            log.warning("upstream %s sent a tag list that is not one", self.server.config.upstream)
            self._send_json(502, {"errors": [{"code": "UNAVAILABLE", "message": "bad gateway"}]})
            return

        name, tags = listed
        page, last = tag_page(tags, request)
        headers = {"Docker-Distribution-API-Version": version} if version else {}
        if last is not None:
            headers["Link"] = next_page_link(name, request.size, last)
        self._send_json(200, {"name": name, "tags": page}, {**headers, **extra}, truncate)
        log.info("%s GET %s -> 200 (page of %d tags)", self.client_address[0], path, len(page))

    # -- the proxy itself -----------------------------------------------------------------

    def _proxy(self, path: str, fault: Fault | None) -> None:
        state, client = self.server.state, self.client_address[0]
        limited = self.server.config.role == HUB_ROLE and MANIFEST_PATH.match(path) is not None
        if limited and self.command == "GET" and state.refuse_pull(client):
            self._drain_request_body()
            self._send_json(429, TOO_MANY_REQUESTS, state.rate_headers(client))
            log.info("%s GET %s -> 429 (pull limit spent)", client, path)
            return

        upstream = self._forward()
        if upstream is None:
            return
        try:
            extra: dict[str, str] = {}
            if limited:
                state.count(client, self.command, upstream.status_code)
                extra = state.rate_headers(client)
            if fault is not None:
                extra.update(fault.headers)
            self._relay(upstream, extra, fault.truncate if fault else None)
        finally:
            upstream.close()
        log.info("%s %s %s -> %d", client, self.command, path, upstream.status_code)

    def _forward(
        self, target: str | None = None, skip: frozenset[str] | set[str] = frozenset()
    ) -> httpx.Response | None:
        """Send the request on to the upstream, at `target` (path and query) if given."""
        config = self.server.config
        headers = [
            (name, value)
            for name, value in self.headers.items()
            if name.lower() not in HOP_BY_HOP
            and name.lower() != "content-length"
            and name.lower() not in skip
        ]
        length = self.headers.get("Content-Length")
        if length is not None:
            headers.append(("Content-Length", length))
        request = self.server.client.build_request(
            self.command,
            config.upstream + (self.path if target is None else target),
            headers=headers,
            content=self._request_body(),
        )
        try:
            return self.server.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("upstream %s did not answer: %s", config.upstream, type(exc).__name__)
            self._send_json(502, {"errors": [{"code": "UNAVAILABLE", "message": "bad gateway"}]})
            self.close_connection = True
            return None

    def _request_body(self) -> Iterator[bytes] | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self._read_exactly(length)
        return None

    def _read_exactly(self, length: int) -> Iterator[bytes]:
        left = length
        while left:
            data = self.rfile.read(min(CHUNK, left))
            if not data:
                raise ConnectionResetError("client closed the request body early")
            left -= len(data)
            yield data

    def _read_chunked(self) -> Iterator[bytes]:
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise ConnectionResetError("malformed chunked request body") from exc
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield from self._read_exactly(size)
            self.rfile.readline(16)

    def _drain_request_body(self) -> None:
        body = self._request_body()
        if body is not None:
            for _ in body:
                pass

    def _relay(
        self, upstream: httpx.Response, extra: Mapping[str, str], truncate: int | None
    ) -> None:
        """Send the upstream's answer on: status, headers, then the body as it arrives."""
        self.send_response_only(upstream.status_code, upstream.reason_phrase)
        length = upstream.headers.get("Content-Length")
        overridden = {name.lower() for name in extra}
        for name, value in upstream.headers.multi_items():
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered == "content-length" or lowered in overridden:
                continue
            if lowered == "location":
                value = self._rewrite_location(value)
            self.send_header(name, value)
        for name, value in extra.items():
            self.send_header(name, value)

        bodiless = self.command == "HEAD" or upstream.status_code in (204, 304)
        chunked = length is None and not bodiless
        if length is not None:
            self.send_header("Content-Length", length)
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif upstream.status_code != 304:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if bodiless:
            return
        self._stream_body(upstream, chunked, truncate)

    def _stream_body(self, upstream: httpx.Response, chunked: bool, truncate: int | None) -> None:
        sent = 0
        for data in upstream.iter_raw(CHUNK):
            if truncate is not None and sent + len(data) >= truncate:
                self.wfile.write(data[: truncate - sent])
                self.wfile.flush()
                self._close_after_truncation()
                return
            sent += len(data)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        if truncate is not None:
            self._close_after_truncation()

    def _rewrite_location(self, value: str) -> str:
        """Point a Location at the upstream back at the proxy, so uploads come through here."""
        upstream = urlsplit(self.server.config.upstream)
        target = urlsplit(value)
        if target.netloc and target.netloc == upstream.netloc:
            return target._replace(scheme="http", netloc=self.server.public_host).geturl()
        return value

    # -- answers made here ----------------------------------------------------------------

    def _send_json(
        self,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
        truncate: int | None = None,
    ) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response_only(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command == "HEAD":
            return
        self.wfile.write(payload if truncate is None else payload[:truncate])
        if truncate is not None:
            self._close_after_truncation()

    def _send_fault(self, fault: Fault) -> None:
        assert fault.status is not None
        body = fault.body
        if body is None:
            body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "injected fault"}]})
        payload = body.encode("utf-8")
        content_type = "application/json" if body.lstrip()[:1] in ("{", "[") else "text/plain"
        headers = {"Content-Type": content_type, **fault.headers}
        self.send_response_only(fault.status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _reset_connection(self) -> None:
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _close_after_truncation(self) -> None:
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)


class LabProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], config: ProxyConfig) -> None:
        upstream = urlsplit(config.upstream)
        if upstream.scheme != "http" or upstream.hostname != "127.0.0.1":
            raise LabError(
                f"the lab proxy forwards to http://127.0.0.1 only, not {upstream.netloc}"
            )
        super().__init__(address, _Handler)
        self.listen_host = address[0]
        self.config = config
        self.state = ProxyState(config.pull_limit, config.window)
        self.client = httpx.Client(
            timeout=httpx.Timeout(120.0, connect=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            follow_redirects=False,
            trust_env=False,
        )
        if config.issuer is not None and config.hide_unknown:
            config.issuer.visible = self.repository_exists

    def repository_exists(self, name: str) -> bool:
        """Whether the upstream registry holds repository `name` (asked with a token of its own).

        An upstream that cannot be asked counts as holding it, so a fault there is not
        disguised as a missing repository.
        """
        issuer = self.config.issuer
        if issuer is None:
            return True
        if len(name) > 255 or not REPOSITORY_NAME.match(name):
            return False
        token = issuer.issue([Scope("repository", name, ("pull",))], INTERNAL_USER)
        try:
            response = self.client.get(
                f"{self.config.upstream}/v2/{name}/tags/list",
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError:
            return True
        return response.status_code != 404

    @property
    def public_host(self) -> str:
        return f"{self.listen_host}:{self.server_address[1]}"

    def server_close(self) -> None:
        super().server_close()
        self.client.close()


class Proxy:
    """A proxy served from a background thread of this process (for tests)."""

    def __init__(self, config: ProxyConfig, port: int = 0) -> None:
        try:
            self.server = LabProxyServer(("127.0.0.1", port), config)
        except OSError as exc:
            raise LabError(f"cannot start the proxy on 127.0.0.1:{port}: {exc}") from exc
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="lab-proxy", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return self.server.public_host

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def state(self) -> ProxyState:
        return self.server.state

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m matrix.lab.proxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", default="127.0.0.1:5101", help="HOST:PORT to serve on")
    parser.add_argument("--upstream", required=True, help="the registry's URL")
    parser.add_argument("--role", choices=(HUB_ROLE, GHCR_ROLE), default=HUB_ROLE)
    parser.add_argument("--token-dir", type=Path, help="the token issuer's key directory")
    parser.add_argument("--service", default="registry.docker.io")
    parser.add_argument("--issuer", default="pull-matrix-lab")
    parser.add_argument("--users-file", type=Path, help="JSON object of user -> password")
    parser.add_argument("--anonymous-actions", default="pull")
    parser.add_argument("--pull-limit", type=int, default=None)
    parser.add_argument("--window", type=int, default=RATE_WINDOW)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    if host != "127.0.0.1":
        sys.exit("the lab proxy serves on 127.0.0.1 only")
    issuer = None
    if args.token_dir is not None:
        users = json.loads(args.users_file.read_text()) if args.users_file else {}
        issuer = TokenIssuer(
            args.token_dir,
            service=args.service,
            issuer=args.issuer,
            users=users,
            anonymous_actions=[a for a in args.anonymous_actions.split(",") if a],
            shape=GHCR_SHAPE if args.role == GHCR_ROLE else HUB_SHAPE,
        )
    config = ProxyConfig(args.upstream.rstrip("/"), args.role, issuer, args.pull_limit, args.window)
    server = LabProxyServer((host, int(port)), config)
    log.info("proxy for %s serving on %s as %s", config.upstream, args.listen, args.role)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
