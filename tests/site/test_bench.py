"""scripts/bench_site.py builds this site and a plain Material site side by side."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_builds_both_sites_and_reports_time_and_size(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_site.py"),
            "--tags",
            "30",
            "--days",
            "3",
            "--work",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    # At this size fixed costs dominate, so the ratio may miss the limit: only the report counts.
    assert result.returncode in (0, 1), result.stderr
    assert re.search(r"this site: +[\d.]+ s +[\d.]+ MB", result.stdout)
    assert re.search(r"plain site: +[\d.]+ s +[\d.]+ MB +\(30 tag pages\)", result.stdout)
    assert re.search(r"time ratio: [\d.]+", result.stdout)
    assert (tmp_path / "ours" / "index.html").exists()
    assert len(list((tmp_path / "plain" / "site" / "tags").iterdir())) == 30
