"""Reading what a registry sends: bodies with a size cap and a deadline, JSON with a depth cap.

httpx's time-out applies to each read, so a server that sends one byte just before every time-out
could hold a body open for hours; `read_body` also stops at an overall deadline. The deadline is
checked between chunks, so a body can run over it by at most one read time-out. The deadline
counts from the moment the request is sent; the registry client bounds the wait for the status
line and headers by the same deadline. Python's JSON
parser recurses once per nesting level; a document nested thousands of levels deep would end in
RecursionError, so `load_json` refuses anything nested deeper than any real manifest is.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

from matrix.errors import ProtocolError, TransportError, redact_url

# Manifests, indexes, configs and tag lists are nested a handful of levels deep.
MAX_JSON_DEPTH = 64
# Where a streamed response carries the monotonic time by which its body must have arrived.
DEADLINE = "matrix.deadline"

# A string (to skip; an unterminated one runs to the end) or a bracket. One pass, no backtracking.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def read_body(response: httpx.Response, limit: int, strict: bool = True) -> bytes:
    """Read a streamed body up to `limit` bytes and close the response.

    Beyond `limit`: ProtocolError when `strict`, else the first `limit` bytes. A connection that
    breaks, or a body still arriving at the response's deadline: TransportError.
    """
    url = redact_url(str(response.request.url))
    deadline = response.extensions.get(DEADLINE)
    chunks, total = [], 0
    try:
        for chunk in response.iter_bytes():
            if deadline is not None and time.monotonic() > deadline:
                raise TransportError(f"answer from {url} too slow: deadline passed")
            total += len(chunk)
            if total > limit:
                if strict:
                    raise ProtocolError(f"answer larger than {limit} bytes", url=url)
                chunks.append(chunk[: limit - (total - len(chunk))])
                break
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise TransportError(f"answer from {url} broke off: {type(exc).__name__}") from exc
    finally:
        response.close()
    return b"".join(chunks)


def json_depth(data: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings are skipped)."""
    depth = deepest = 0
    for match in _TOKEN.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def load_json(data: bytes | str, what: str, url: str = "") -> Any:
    """Parse JSON from a registry; ProtocolError when it is not JSON or nests too deeply."""
    raw = data.encode() if isinstance(data, str) else data
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ProtocolError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels", url=url)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} is not JSON", url=url) from exc
