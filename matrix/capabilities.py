"""What each Docker engine version can pull, and the failure it reports when it cannot.

CAPABILITIES is the table behind every prediction. `since` is the first engine version that
behaves as the row says, `until` the first version that no longer does (empty: still true), and
`symptom` the class of what an engine outside that range reports instead. An empty `since`
means no engine version has the capability.
`source` says where the fact comes from: `measured` rows were observed with real engines against
a local distribution registry (engines 20.10.5, 20.10.24, 26.1.5 and 28.5.2; see the project's
image-shape cases); `documented` rows come from Docker's release notes and deprecation list;
`assumed` rows extend a measurement to versions nobody has pulled with yet. A pull observation
whose verdict differs from the prediction is flagged as a finding, which is how an assumption
gets corrected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from matrix.analysis import Analysis
from matrix.classify import CLASS_INFO, ErrorClass
from matrix.errors import ConfigError

Version = tuple[int, ...]

# Engine versions every probe predicts for (kept in observation details and shown by `show`).
REFERENCE_VERSIONS = ("20.10", "23.0", "24.0", "25.0", "26.1", "27.0", "28.0", "28.5", "29.0")


@dataclass(frozen=True)
class Capability:
    feature: str
    since: str
    until: str
    symptom: ErrorClass
    source: str
    note: str


CAPABILITIES: tuple[Capability, ...] = (
    Capability(
        "oci-manifest",
        "18.09",
        "",
        ErrorClass.UNSUPPORTED_MEDIA_TYPE,
        "documented",
        "OCI image manifests and indexes pull from 18.09; older engines ask for the Docker "
        "media types only.",
    ),
    Capability(
        "zstd-layers",
        "23.0",
        "",
        ErrorClass.LAYER_EXTRACT_FAILED,
        "measured",
        "zstd-compressed layers unpack from 23.0 (measured ok on 26.1.5 and 28.5.2); 20.10.x "
        "fails in ApplyLayer with `unexpected EOF` (measured on 20.10.5 and 20.10.24).",
    ),
    Capability(
        "schema1",
        "1.10",
        "26.0",
        ErrorClass.SCHEMA1_DISABLED,
        "measured",
        "Schema 1 pulls by default until 26.0 (measured ok on 20.10.x); disabled by default "
        "from 26.0 (measured on 26.1.5).",
    ),
    Capability(
        "schema1-opt-in",
        "26.0",
        "28.2",
        ErrorClass.SCHEMA1_REMOVED,
        "measured",
        "Schema 1 support is removed in 28.2 (measured on 28.5.2); the release is documented.",
    ),
    Capability(
        "build-cache-index-as-missing-platform",
        "1.10",
        "26.1",
        ErrorClass.REGISTRY_ERROR,
        "measured",
        "A build-cache index on a tag reports no matching platform (measured on 20.10.5 and "
        "20.10.24; assumed for 23.0 to 26.0, which nobody has pulled with yet); from 26.1 the "
        "engine asks the registry for an entry as a manifest and reports the registry's 500 "
        "(measured on 26.1.5 and 28.5.2).",
    ),
    Capability(
        "lone-manifest-any-platform",
        "1.10",
        "26.0",
        ErrorClass.NO_PLATFORM_MATCH,
        "measured",
        "A lone image manifest (no index) built for another platform is pulled anyway "
        "(measured on 20.10.5 and 20.10.24 pulling an amd64 image for linux/arm64); 26.1.5 "
        "refuses it as not matching the platform (measured; the boundary at 26.0 is assumed).",
    ),
    Capability(
        "lone-manifest-any-platform-again",
        "28.0",
        "",
        ErrorClass.NO_PLATFORM_MATCH,
        "measured",
        "A lone image manifest for another platform is pulled anyway again (measured on "
        "28.5.2; the boundary at 28.0 is assumed).",
    ),
    Capability(
        "artifact-manifest",
        "",
        "",
        ErrorClass.UNSUPPORTED_MEDIA_TYPE,
        "assumed",
        "A manifest whose config is not an image config (an artifact) is never pulled as an "
        "image; the engine reports a media type it does not support.",
    ),
)

_BY_FEATURE = {row.feature: row for row in CAPABILITIES}
_VERSION = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_engine_version(text: str) -> Version:
    """`20.10.24+dfsg1` -> (20, 10, 24); `26.1` -> (26, 1, 0); ConfigError when unreadable."""
    match = _VERSION.match(str(text))
    if not match:
        raise ConfigError(f"engine version {text!r} does not start with a version number")
    return tuple(int(part or 0) for part in match.groups())


def _since(feature: str) -> Version:
    return parse_engine_version(_BY_FEATURE[feature].since or "99999")


def _until(feature: str) -> Version:
    return parse_engine_version(_BY_FEATURE[feature].until or "9999")


def supports(feature: str, engine_version: str | Version) -> bool:
    """Whether an engine of this version has the capability in `feature`'s row."""
    version = _as_version(engine_version)
    return _since(feature) <= version < _until(feature)


def _as_version(engine_version: str | Version) -> Version:
    if isinstance(engine_version, tuple):
        return engine_version
    return parse_engine_version(engine_version)


def predict(analysis: Analysis | None, platform: str, engine_version: str | Version) -> ErrorClass:
    """The class of what an engine of this version reports when it pulls the tag for `platform`.

    This is the symptom (what the engine's message classifies as), not the explained cause:
    a build-cache export on a tag is predicted as `registry-error` for engines from 26.1.
    Without an analysis, or for an engine version that cannot be read, it is `unknown`.
    """
    if analysis is None:
        return ErrorClass.UNKNOWN
    try:
        version = _as_version(engine_version)
    except ConfigError:
        return ErrorClass.UNKNOWN
    if analysis.kind == "unknown":
        return ErrorClass.UNSUPPORTED_MEDIA_TYPE
    if analysis.kind == "not-an-image":
        return _predict_not_an_image(analysis, version)
    if analysis.is_oci and not supports("oci-manifest", version):
        return ErrorClass.UNSUPPORTED_MEDIA_TYPE
    if analysis.kind == "schema1":
        # Engines do not hold a schema 1 manifest's architecture against the requested platform:
        # measured with 20.10.5 and 20.10.24, which pull an amd64 schema 1 image for linux/arm64,
        # while 26.1.5 and 28.5.2 refuse it as schema 1 whatever the platform.
        return _predict_image(analysis, version)
    image = analysis.for_platform(platform)
    if image is None and analysis.kind == "image" and _pulls_any_platform(version):
        image = analysis
    if image is None:
        return ErrorClass.NO_PLATFORM_MATCH
    return _predict_image(image, version)


def _pulls_any_platform(version: Version) -> bool:
    """Whether this engine pulls a lone manifest of another platform without complaint."""
    return supports("lone-manifest-any-platform", version) or supports(
        "lone-manifest-any-platform-again", version
    )


def _predict_not_an_image(analysis: Analysis, version: Version) -> ErrorClass:
    if not analysis.children:
        return ErrorClass.UNSUPPORTED_MEDIA_TYPE
    if supports("build-cache-index-as-missing-platform", version):
        return ErrorClass.NO_PLATFORM_MATCH
    return ErrorClass.REGISTRY_ERROR


def _predict_image(image: Analysis, version: Version) -> ErrorClass:
    if image.kind == "schema1":
        if supports("schema1", version):
            return ErrorClass.OK
        if supports("schema1-opt-in", version):
            return ErrorClass.SCHEMA1_DISABLED
        return ErrorClass.SCHEMA1_REMOVED
    if image.kind == "not-an-image":
        return ErrorClass.UNSUPPORTED_MEDIA_TYPE
    if image.is_oci and not supports("oci-manifest", version):
        return ErrorClass.UNSUPPORTED_MEDIA_TYPE
    if "zstd" in image.compressions and not supports("zstd-layers", version):
        return ErrorClass.LAYER_EXTRACT_FAILED
    return ErrorClass.OK


def predictions(analysis: Analysis | None, platform: str) -> dict[str, str]:
    """Predicted class per reference engine version."""
    return {v: str(predict(analysis, platform, v)) for v in REFERENCE_VERSIONS}


# Symptoms that a tag which is not an image produces in one engine or another. Rate limits,
# authentication and network failures are about the path, not the tag, and are never explained
# away by the tag's content.
_NOT_AN_IMAGE_SYMPTOMS = {
    ErrorClass.REGISTRY_ERROR,
    ErrorClass.NO_PLATFORM_MATCH,
    ErrorClass.NOT_AN_IMAGE,
    ErrorClass.UNSUPPORTED_MEDIA_TYPE,
    ErrorClass.MANIFEST_UNKNOWN,
    ErrorClass.UNKNOWN,
}


def explain(
    analysis: Analysis | None, platform: str, symptom: ErrorClass, message: str = ""
) -> tuple[ErrorClass, str]:
    """The verdict class and the cause in words for a symptom seen when pulling the tag.

    The verdict differs from the symptom when the tag's content explains it: a registry 500 on a
    tag that holds a build-cache export is `not-an-image`. Without an analysis the symptom stands
    with its general explanation.
    """
    symptom = ErrorClass(symptom)
    if symptom == ErrorClass.OK:
        return ErrorClass.OK, ""
    if analysis is None:
        return symptom, CLASS_INFO[symptom].explanation
    if analysis.kind == "not-an-image" and symptom in _NOT_AN_IMAGE_SYMPTOMS:
        return ErrorClass.NOT_AN_IMAGE, f"this tag does not point at an image: {analysis.reason}"
    image = analysis.for_platform(platform)
    if image is not None and image.kind == "not-an-image" and symptom in _NOT_AN_IMAGE_SYMPTOMS:
        return ErrorClass.NOT_AN_IMAGE, f"this tag does not point at an image: {image.reason}"
    if symptom in (ErrorClass.SCHEMA1_DISABLED, ErrorClass.SCHEMA1_REMOVED):
        return symptom, _schema1_cause(symptom)
    if symptom == ErrorClass.LAYER_EXTRACT_FAILED and image and "zstd" in image.compressions:
        return symptom, (
            "the image's layers are zstd-compressed; engines before 23.0 cannot unpack zstd layers"
        )
    if symptom == ErrorClass.NO_PLATFORM_MATCH and analysis.kind == "index" and image is None:
        offered = ", ".join(analysis.platforms) or "no platform at all"
        return symptom, f"the index offers {offered}, not {platform}"
    if symptom == ErrorClass.NO_PLATFORM_MATCH and image is None and analysis.platform:
        return symptom, f"the image is built for {analysis.platform} only, not {platform}"
    return symptom, CLASS_INFO[symptom].explanation


def _schema1_cause(symptom: ErrorClass) -> str:
    if symptom == ErrorClass.SCHEMA1_DISABLED:
        return (
            "the tag is a Docker schema 1 manifest; engines from 26.0 refuse schema 1 by default "
            "and 28.2 removed it"
        )
    return "the tag is a Docker schema 1 manifest; engines from 28.2 cannot pull schema 1 at all"
