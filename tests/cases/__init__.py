"""What real engines did with each image shape, measured with Debian's dockerd 20.10.5, 20.10.24,
26.1.5 and 28.5.2 pulling linux/amd64 from a CNCF distribution registry on loopback.

The tests predict (capabilities) and pull (real engines) against this one table.
"""

ENGINE_VERSIONS = ("20.10.5", "20.10.24", "26.1.5", "28.5.2")

# Shape -> the class each engine of ENGINE_VERSIONS reported, in that order.
MEASURED = {
    "v2s2": ("ok", "ok", "ok", "ok"),
    "oci": ("ok", "ok", "ok", "ok"),
    "schema1": ("ok", "ok", "schema1-disabled", "schema1-removed"),
    "zstd": ("layer-extract-failed", "layer-extract-failed", "ok", "ok"),
    "arm-only": ("no-platform-match",) * 4,
    "build-cache-on-tag": (
        "no-platform-match",
        "no-platform-match",
        "registry-error",
        "registry-error",
    ),
}
