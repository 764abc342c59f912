"""Version-aware ordering and safe slugs for registry-supplied names."""

from __future__ import annotations

import re

import pytest

from matrix.site.versions import slug, sort_engines, sort_tags, version_tuple


def test_tags_are_sorted_newest_first_with_moving_tags_on_top() -> None:
    tags = ["1.2", "1.10.0", "latest", "1.9.3", "1.10.0-rc1", "v2.0", "feature-x", "stable"]
    assert sort_tags(tags) == [
        "latest",
        "stable",
        "v2.0",
        "1.10.0",
        "1.10.0-rc1",
        "1.9.3",
        "1.2",
        "feature-x",
    ]


def test_engines_are_sorted_by_version_number_not_text() -> None:
    assert sort_engines(["28.5.2+dfsg1", "20.10.5+dfsg1", "20.10.24+dfsg1", "9.0.1"]) == [
        "9.0.1",
        "20.10.5+dfsg1",
        "20.10.24+dfsg1",
        "28.5.2+dfsg1",
    ]
    assert version_tuple("20.10.24+dfsg1") == (20, 10, 24)
    assert version_tuple("nightly") == ()


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "..", ".hidden", "a b", "tag?x=1#y", "é", "<img src=x>", "a/b", "A", ""],
)
def test_slugs_of_odd_names_are_safe_file_names(name: str) -> None:
    value = slug(name)
    assert re.fullmatch(r"[a-z0-9_][a-z0-9_.-]*", value), value
    assert value not in (".", "..") and "/" not in value and len(value) <= 100


def test_plain_names_keep_their_spelling_and_different_names_never_share_a_slug() -> None:
    assert slug("1.2.3") == "1.2.3"
    assert slug("latest") == "latest"
    names = ["a", "A", "a-b", "a/b", "a b", "a_b", "a.b", "..", ".", "x" * 300, "x" * 301]
    slugs = [slug(name) for name in names]
    assert len(set(slugs)) == len(names)
