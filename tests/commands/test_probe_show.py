"""`probe` and `show` end to end against a real registry with more tags than one page."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from matrix.cli import cli
from matrix.lab.imagebuild import build_image, image_index
from matrix.lab.images import AMD64, ARM64, SHAPE_BUILD_CACHE, publish_shapes
from matrix.lab.push import Pusher
from matrix.observations import read_shard

pytestmark = pytest.mark.registry

MANY = 130  # more tags than the client asks for in one page (n=100)


@pytest.fixture(scope="module")
def many_tags(registry) -> str:  # type: ignore[no-untyped-def]
    name = "cli/many"
    root = image_index([build_image(AMD64, "many"), build_image(ARM64, "many")])
    with Pusher(registry.host) as pusher:
        pusher.push(name, "1.0.0", root)
        for number in range(1, MANY):
            pusher.push_manifest(name, f"1.0.{number}", root)
    return f"{registry.host}/{name}"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)
    return result.exit_code, result.output


def test_probe_lists_every_tag_past_the_first_page(many_tags: str, tmp_path: Path) -> None:
    host = many_tags.split("/", 1)[0]
    out = tmp_path / "obs.csv"

    code, output = run(
        "probe", many_tags, "--insecure", host, "--out", str(out), "--data", str(tmp_path)
    )

    assert code == 0, output
    frame = read_shard(out)
    assert frame["tag"].nunique() == MANY
    assert set(frame["platform"]) == {"linux/amd64", "linux/arm64"}
    assert set(frame["outcome"]) == {"ok"}
    assert frame["digest"].nunique() == 1 and frame["kind"].eq("index").all()
    assert frame["platform_digest"].nunique() == 2
    assert f"manifest GETs: {host}=3" in output  # one index and two images, once each
    assert "1.0.129" in output

    code, output = run(
        "probe", many_tags, "--insecure", host, "--out", str(out), "--data", str(tmp_path)
    )
    assert code == 0 and f"manifest GETs: {host}=0" in output


def test_probe_tags_option_and_shard_default(many_tags: str, tmp_path: Path) -> None:
    host = many_tags.split("/", 1)[0]
    code, output = run(
        "probe", many_tags, "--insecure", host, "--tags", "1.0.5,1.0.7",
        "--platform", "linux/arm64", "--data", str(tmp_path), "--run-id", "run-1",
    )  # fmt: skip

    assert code == 0, output
    frame = read_shard(tmp_path / "observations" / "run-1.csv")
    assert sorted(frame["tag"]) == ["1.0.5", "1.0.7"]
    assert set(frame["platform"]) == {"linux/arm64"}


def test_show_renders_probe_verdicts_and_predictions(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    publish_shapes(registry.host, "cli/shapes")
    reference = f"{registry.host}/cli/shapes"
    out = tmp_path / "obs.csv"
    code, output = run(
        "probe", reference, "--insecure", registry.host, "--out", str(out),
        "--data", str(tmp_path), "--platform", "linux/amd64",
    )  # fmt: skip
    assert code == 0, output
    assert "not-an-image" in output and "26.1–29.0 registry-error" in output

    code, output = run("show", str(out))  # into a pipe: the natural width, no folded cells

    assert code == 0, output
    row = next(line for line in output.splitlines() if SHAPE_BUILD_CACHE in line)
    assert "not-an-image" in row
    assert "no-platform-match*" in row and "registry-error*" in row
    zstd = next(line for line in output.splitlines() if "│ zstd" in line)
    assert "layer-extract-failed*" in zstd
    assert "predicted" in output


def test_show_prefers_pulls_over_predictions(tmp_path: Path) -> None:
    from matrix.observations import Observation, write_shard

    rows = [
        Observation(
            "r1", "docker.io", "kivy/buildozer", "latest", "linux/amd64", "probe", "0.1.0",
            "probe", "fail", error_class="not-an-image", kind="not-an-image",
            details='{"predictions":{"20.10":"no-platform-match","26.1":"registry-error"}}',
        ),
        Observation(
            "r1", "docker.io", "kivy/buildozer", "latest", "linux/amd64", "docker", "26.1.5",
            "pull", "fail", error_class="registry-error", verdict="not-an-image",
            finding="predicted registry-error",
        ),
    ]  # fmt: skip
    write_shard(rows, tmp_path, "r1")

    code, output = run("show", str(tmp_path), "--width", "300")

    assert code == 0, output
    assert "docker 26.1.5" in output
    assert "not-an-image !" in output
    assert "no-platform-match*" in output  # 20.10 predicted, no pull with it


def test_show_of_an_empty_directory_says_so(tmp_path: Path) -> None:
    code, output = run("show", str(tmp_path))

    assert code == 0 and "no observations" in output


def test_probe_rejects_a_bad_reference() -> None:
    code, output = run("probe", "Not A Repo", "--out", "/dev/null")

    assert code != 0 and "REF" in output


def test_interrupted_probe_keeps_what_it_observed(
    many_tags: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matrix.probe import Prober

    original = Prober.probe_tag

    def probe_then_stop(self: Prober, repository, tag: str):  # type: ignore[no-untyped-def]
        if tag == "1.0.3":
            raise KeyboardInterrupt
        return original(self, repository, tag)

    monkeypatch.setattr(Prober, "probe_tag", probe_then_stop)
    host = many_tags.split("/", 1)[0]
    out = tmp_path / "obs.csv"
    result = CliRunner().invoke(
        cli,
        ["probe", many_tags, "--insecure", host, "--tags", "1.0.1,1.0.2,1.0.3,1.0.4",
         "--out", str(out), "--data", str(tmp_path)],
        obj={},
    )  # fmt: skip

    assert result.exit_code != 0
    assert sorted(set(read_shard(out)["tag"])) == ["1.0.1", "1.0.2"]


@pytest.mark.parametrize("tags", ["../../../../v2/other/x", "ok,a?b=c", "<script>"])
def test_probe_refuses_invalid_tag_names(tags: str, tmp_path: Path) -> None:
    out = tmp_path / "obs.csv"
    code, output = run("probe", "127.0.0.1:9/demo/app", "--tags", tags, "--out", str(out))

    assert code == 2 and "not a valid tag name" in output
    assert not out.exists()


class _SlowTagList(BaseHTTPRequestHandler):
    """Answers the tag list one byte every 0.2 s; everything else 404."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if not self.path.startswith("/v2/slow/app/tags/list"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "200")
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


def test_probe_gives_up_on_a_slow_drip_registry_and_records_it(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowTagList)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    out = tmp_path / "obs.csv"
    started = time.monotonic()
    try:
        code, output = run(
            "probe", f"{host}/slow/app", "--insecure", host, "--deadline", "1",
            "--platform", "linux/amd64", "--out", str(out), "--data", str(tmp_path),
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()

    assert code == 0, output
    assert time.monotonic() - started < 15
    recorded = read_shard(out)
    assert list(recorded["error_class"]) == ["network"]
    assert "deadline" in recorded["message"][0]
