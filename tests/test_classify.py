import csv
from pathlib import Path

import pytest

from matrix.classify import CLASS_INFO, RULES, ErrorClass, classify, classify_http, export_rules

# Engine and registry messages with the class each belongs to, as measured on real engines.
CASES = Path(__file__).resolve().parent / "cases" / "errors.tsv"


def _cases() -> list[tuple[str, str]]:
    if not CASES.exists():
        pytest.skip(f"{CASES} is not here")
    with CASES.open(encoding="utf-8") as stream:
        return [(row["message"], row["class"]) for row in csv.DictReader(stream, delimiter="\t")]


def test_every_shared_case_gets_its_class() -> None:
    wrong = [(msg, want, classify(msg)) for msg, want in _cases() if classify(msg) != want]
    assert wrong == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # Messages from other engines, containerd and registries than the shared cases.
        (
            "failed to register layer: ApplyLayer exit status 1 stdout:  stderr: unexpected EOF",
            "layer-extract-failed",
        ),
        ('failed to resolve reference "r/a:x": r/a:x: not found', "manifest-unknown"),
        (
            "unexpected status from HEAD request to http://r/v2/a/manifests/x: 500 Internal Server "
            "Error",
            "registry-error",
        ),
        (
            'failed commit on ref "layer-sha256:1": unexpected commit digest sha256:1, expected '
            "sha256:2: failed precondition",
            "digest-mismatch",
        ),
        (
            'Error response from daemon: Get "https://r/v2/": http: server gave HTTP response to '
            "HTTPS client",
            "network",
        ),
        ("read tcp 10.0.0.1:1->10.0.0.2:443: read: connection reset by peer", "network"),
        (
            "unexpected status from GET request to https://r/v2/a/manifests/x: 401 Unauthorized",
            "auth-denied",
        ),
        (
            "httpReadSeeker: failed open: content at https://r/v2/a/blobs/sha256:1 not found",
            "blob-unknown",
        ),
        (
            "image with reference r/a:x was found but does not match the specified platform",
            "no-platform-match",
        ),
        ("something nobody has ever seen", "unknown"),
        ("", "unknown"),
    ],
)
def test_classify_generalises(message: str, expected: str) -> None:
    assert classify(message) == expected


def test_layer_failure_with_eof_is_not_network() -> None:
    message = "failed to register layer: Error processing tar file: unexpected EOF"
    assert classify(message) is ErrorClass.LAYER_EXTRACT_FAILED


def test_every_class_is_described_and_reachable() -> None:
    assert set(CLASS_INFO) == set(ErrorClass)
    ruled = {cls for cls, _ in RULES}
    assert ruled == set(ErrorClass) - {ErrorClass.OK, ErrorClass.UNKNOWN}


@pytest.mark.parametrize(
    ("status", "codes", "expected"),
    [
        (429, (), "rate-limited"),
        (401, ("UNAUTHORIZED",), "auth-denied"),
        (404, ("MANIFEST_UNKNOWN",), "manifest-unknown"),
        (404, ("BLOB_UNKNOWN",), "blob-unknown"),
        (503, (), "registry-error"),
        (200, (), "ok"),
    ],
)
def test_http_answers_are_classified(status: int, codes: tuple[str, ...], expected: str) -> None:
    assert classify_http(status, codes) == expected


def test_exported_rules_are_the_rules() -> None:
    exported = export_rules()
    assert [r["class"] for r in exported["rules"]] == [str(c) for c, _ in RULES]
    assert set(exported["classes"]) == {str(c) for c in ErrorClass}


def test_no_pattern_has_an_unbounded_gap() -> None:
    # `.*` between two literals is quadratic on a long message that repeats the first literal;
    # a registry controls the error text, so every gap must be bounded.
    import re

    unbounded = re.compile(r"(\.|\[[^\]]*\]|\\[sSwWdD])[*+]")
    assert [pattern for _, pattern in RULES if unbounded.search(pattern)] == []


def test_only_the_start_of_a_message_decides() -> None:
    assert classify("x" * 5000 + " manifest unknown") == "unknown"
    assert classify("manifest unknown " + "x" * 5000) == "manifest-unknown"
