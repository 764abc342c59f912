#!/usr/bin/env python3
"""Build benchmark: this site against a plain one-Markdown-page-per-tag Material site.

Both are built from the same generated sample (default 1,000 tags x 8 engines x 2 registries x
90 days). The plain site is what the obvious design gives: one Material page per tag, each
holding that tag's latest matrix as a Markdown table, all in the navigation. Prints both build
times, their ratio and the sizes on disk; exits non-zero when this site takes a quarter of the
plain one's time or more, or is 30 MB or more.

    .venv/bin/python scripts/bench_site.py [--tags 1000] [--days 90] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matrix.observations import latest, load  # noqa: E402
from matrix.site.build import build_site  # noqa: E402
from matrix.site.sample import ENGINES, generate  # noqa: E402
from matrix.site.versions import slug, sort_tags  # noqa: E402

MAX_RATIO = 0.25
MAX_BYTES = 30 * 1000 * 1000

PLAIN_CONFIG = """\
site_name: plain pull matrix
theme:
  name: material
  font: false
plugins:
  - search
"""


def size_of(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def write_plain_docs(data_dir: Path, docs: Path) -> int:
    """One Markdown page per tag with its latest matrix as a table; returns the page count."""
    frame = load([data_dir])
    pulls = latest(frame, method="pull")
    docs.mkdir(parents=True)
    tags = sort_tags(set(frame["tag"]))
    (docs / "index.md").write_text(
        "# Tags\n\n" + "\n".join(f"- [{t}](tags/{slug(t)}.md)" for t in tags) + "\n"
    )
    (docs / "tags").mkdir()
    for tag, group in pulls.groupby("tag"):
        lines = [f"# {tag}", "", "| registry | platform | engine | verdict | message |"]
        lines.append("|---|---|---|---|---|")
        ordered = group.sort_values(["registry", "platform", "client_version"])
        for row in ordered.to_dict("records"):
            message = str(row["message"]).replace("|", "\\|")
            lines.append(
                f"| {row['registry']} | {row['platform']} | {row['client_version']} | "
                f"{row['verdict']} | {message} |"
            )
        (docs / "tags" / f"{slug(str(tag))}.md").write_text("\n".join(lines) + "\n")
    return len(tags)


def build_plain(data_dir: Path, work: Path) -> tuple[float, int, int]:
    project = work / "plain"
    pages = write_plain_docs(data_dir, project / "docs")
    (project / "mkdocs.yml").write_text(PLAIN_CONFIG)
    mkdocs = Path(sys.executable).with_name("mkdocs")
    started = time.perf_counter()
    subprocess.run(
        [str(mkdocs), "build", "--quiet", "--site-dir", str(project / "site")],
        cwd=project,
        check=True,
    )
    return time.perf_counter() - started, size_of(project / "site"), pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--work", type=Path, default=None, help="keep files here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-site-"))
    data_dir = work / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    for old in ("ours", "plain"):
        shutil.rmtree(work / old, ignore_errors=True)

    started = time.perf_counter()
    generate(data_dir, tags=args.tags, days=args.days)
    rows = len(load([data_dir]))
    print(
        f"sample: {args.tags} tags x {len(ENGINES)} engines x 2 registries x {args.days} days "
        f"= {rows} observations ({time.perf_counter() - started:.1f}s to generate)"
    )

    ours_seconds = build_site(data_dir, work / "ours")
    ours_bytes = size_of(work / "ours")
    plain_seconds, plain_bytes, pages = build_plain(data_dir, work)
    ratio = ours_seconds / plain_seconds
    print(f"this site:  {ours_seconds:6.1f} s  {ours_bytes / 1e6:7.1f} MB")
    print(f"plain site: {plain_seconds:6.1f} s  {plain_bytes / 1e6:7.1f} MB  ({pages} tag pages)")
    print(f"time ratio: {ratio:.2f} (must be < {MAX_RATIO}); size limit {MAX_BYTES / 1e6:.0f} MB")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ratio < MAX_RATIO and ours_bytes < MAX_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
