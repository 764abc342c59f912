"""Platforms (`os/architecture[/variant]`), as indexes and `docker pull --platform` write them."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")

# The variant an architecture has when none is written, as containerd normalises it.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def matches(self, other: Platform) -> bool:
        """True when `other` (from an index entry) satisfies this requested platform."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        wanted = self.variant or _DEFAULT_VARIANT.get(self.architecture, "")
        offered = other.variant or _DEFAULT_VARIANT.get(other.architecture, "")
        return wanted == offered


def parse_platform(text: str) -> Platform:
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform {text!r} is not OS/ARCH[/VARIANT]")
    return Platform(*(part.lower() for part in parts))


def from_descriptor(platform: dict[str, object] | None) -> Platform | None:
    """The platform of an index entry, or None when the entry has none."""
    if not platform:
        return None
    return Platform(
        str(platform.get("os", "")),
        str(platform.get("architecture", "")),
        str(platform.get("variant", "") or ""),
    )
