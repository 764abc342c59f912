"""Registries that stand in for public ones (the lab's) are named with their role on the site."""

from __future__ import annotations

import re
from pathlib import Path

from matrix.observations import Observation, write_roles, write_shard
from matrix.site.build import build_site

HUB, GHCR = "127.0.0.1:5101", "127.0.0.1:5102"
GOOD = "sha256:" + "12" * 32


def _pull(registry: str, outcome: str, verdict: str, method: str = "pull") -> Observation:
    return Observation(
        run_id="20261203T100000Z-roles",
        registry=registry,
        repository="kivy/buildozer",
        tag="latest",
        platform="linux/amd64",
        client="docker" if method == "pull" else "probe",
        client_version="28.5.2+dfsg4" if method == "pull" else "0.1.0",
        method=method,
        outcome=outcome,
        error_class="" if outcome == "ok" else "registry-error",
        verdict=verdict,
        digest=GOOD if outcome == "ok" else "sha256:" + "34" * 32,
        observed_at="2026-12-03T10:00:00Z",
    )


def test_lab_registries_are_named_with_their_role_but_commands_use_the_host(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    rows = [
        _pull(HUB, "fail", "not-an-image", method="probe"),
        _pull(GHCR, "ok", "ok", method="probe"),
        _pull(HUB, "fail", "not-an-image"),
        _pull(GHCR, "ok", "ok"),
    ]
    write_shard(rows, data, "r1")
    write_roles(data, {HUB: "docker.io", GHCR: "<b>ghcr.io</b>"})

    build_site(data, tmp_path / "site")

    home = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert f"{HUB} (docker.io role)" in home
    assert "&lt;b&gt;ghcr.io&lt;/b&gt; role" in home and "<b>ghcr.io</b>" not in home
    commands = re.findall(r"docker pull [^<\s]+", home)
    assert f"docker pull {GHCR}/kivy/buildozer@{GOOD}" in commands
    assert not any("role" in command for command in commands)


def test_without_a_roles_file_hosts_stand_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_shard([_pull(HUB, "ok", "ok")], data, "r1")

    build_site(data, tmp_path / "site")

    assert "role)" not in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


def test_secrets_in_recorded_messages_are_not_published(tmp_path: Path) -> None:
    data = tmp_path / "data"
    leaky = _pull(HUB, "fail", "registry-error")
    leaky.message = "Get https://user:HUNTER2PW@cdn.example/x?X-Amz-Signature=AMZSIG123: 500"
    write_shard([_pull(HUB, "fail", "registry-error", method="probe"), leaky], data, "r1")

    build_site(data, tmp_path / "site")

    published = "".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in (tmp_path / "site").rglob("*")
        if path.is_file() and path.suffix in (".html", ".json", ".xml", ".svg")
    )
    assert "cdn.example" in published
    assert "HUNTER2PW" not in published and "AMZSIG123" not in published
