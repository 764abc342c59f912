"""Faults and the pull limit of the lab proxy, without a network."""

from __future__ import annotations

import time

import pytest

from matrix.lab.faults import Fault, ProxyState, limit_from_json


def test_fault_from_json_checks_its_fields() -> None:
    fault = Fault.from_json({"path": "/manifests/", "method": "get", "status": 500})
    assert (fault.method, fault.status) == ("GET", 500)
    digest = {"Docker-Content-Digest": "sha256:" + "0" * 64}
    assert Fault.from_json({"path": "x", "headers": digest}).headers == digest
    for bad in (
        {"status": 500},
        {"path": "(", "status": 500},
        {"path": "x", "colour": "red"},
        {"path": "x", "headers": {"X-Evil": "a\r\nSet-Cookie: b"}},
        {"path": "x", "headers": ["not", "an", "object"]},
        {"path": "x", "headers": {"Bad Name": "v"}},
        {"path": "x", "status": "500"},
        {"path": "x", "status": 700},
        {"path": "x", "latency": -1},
        {"path": "x", "truncate": "5"},
        {"path": "x", "reset": "yes"},
        {"path": "x", "times": 1.5},
        ["path"],
    ):
        with pytest.raises(ValueError):
            Fault.from_json(bad)  # type: ignore[arg-type]


def test_fault_applies_to_its_method_and_only_so_often() -> None:
    state = ProxyState()
    state.faults.append(Fault.from_json({"path": "/blobs/", "method": "GET", "times": 2}))
    assert state.take_fault("HEAD", "/v2/a/blobs/sha256:1") is None
    assert state.take_fault("GET", "/v2/a/manifests/1") is None
    assert state.take_fault("GET", "/v2/a/blobs/sha256:1") is not None
    assert state.take_fault("GET", "/v2/a/blobs/sha256:1") is not None
    assert state.take_fault("GET", "/v2/a/blobs/sha256:1") is None
    assert state.snapshot()["faults"][0]["applied"] == 2


def test_pull_limit_counts_gets_that_found_a_manifest() -> None:
    state = ProxyState(pull_limit=2)
    state.count("10.0.0.1", "GET", 404)
    state.count("10.0.0.1", "HEAD", 200)
    state.count("10.0.0.1", "GET", 200)
    assert not state.refuse_pull("10.0.0.1")
    state.count("10.0.0.1", "GET", 200)
    assert state.refuse_pull("10.0.0.1")
    assert not state.refuse_pull("10.0.0.2")
    assert state.rate_headers("10.0.0.1") == {
        "ratelimit-limit": "2;w=21600",
        "ratelimit-remaining": "0;w=21600",
        "docker-ratelimit-source": "10.0.0.1",
    }
    assert state.snapshot()["clients"]["10.0.0.1"] == {
        "manifest_get": 2,
        "manifest_head": 1,
        "refused": 1,
    }


def test_without_a_limit_the_hub_limit_is_advertised_but_not_enforced() -> None:
    state = ProxyState()
    for _ in range(150):
        state.count("10.0.0.1", "GET", 200)
    assert not state.refuse_pull("10.0.0.1")
    assert state.rate_headers("10.0.0.1")["ratelimit-remaining"] == "0;w=21600"


def test_counts_start_again_after_the_window() -> None:
    state = ProxyState(pull_limit=1, window=1)
    state.count("10.0.0.1", "GET", 200)
    assert state.refuse_pull("10.0.0.1")
    time.sleep(1.1)
    assert not state.refuse_pull("10.0.0.1")


def test_limit_from_json() -> None:
    assert limit_from_json({"pulls": 3}, 60) == (3, 60)
    assert limit_from_json({"pulls": None, "window": 5}, 60) == (None, 5)
    for bad in ({"pulls": "3"}, {"pulls": -1}, {"window": 0}, [3]):
        with pytest.raises(ValueError):
            limit_from_json(bad, 60)
