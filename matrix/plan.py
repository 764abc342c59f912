"""Which pulls to do in this run and which to leave for later, within each registry's rate limit.

Pulling is incremental. The latest probe says which digest each tag points at, per platform; an
engine pulls a (registry, repository, tag, platform) again only when it has no verdict for that
digest yet: the tag moved, the tag is new, or the engine is. A harness error or a rate-limited
attempt is not a verdict, and a failure of a transient class (a registry outage, a broken
connection) is a verdict that may change by itself: those cells are tried again. A failure
whose explained cause lasts (a tag that is not an image, a missing platform) is not.

Pulls cost what the registry counts. Docker Hub counts manifest GETs (HEADs are free): pulling
one platform of a multi-platform tag is a GET of the index plus a GET of that platform's
manifest, so two; a single-platform manifest is one. The plan spends at most the registry's
budget, or what its `ratelimit-remaining` header said on the latest probe when that is lower,
and defers the rest. The order is fixed, so deferred pulls come first in a later run: the
priority tags (`latest`, `stable`), then version tags newest first, then every other tag by name.

Typical use::

    plan = plan_pulls(history, probe, [("docker", "27"), ("docker", "20.10")], {"docker.io": 100})
    plan = plan_for_config(load_config(), history, probe)  # the same, as the config says
    for pull in plan.now:
        ...  # pull pull.reference for pull.platform with engine pull.version
"""

from __future__ import annotations

import bisect
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from matrix.classify import CLASS_INFO, ErrorClass
from matrix.config import DEFAULT_PRIORITY_TAGS, Config
from matrix.errors import ConfigError, DataError
from matrix.platforms import DEFAULT_PLATFORMS
from matrix.reference import parse_repository

log = logging.getLogger(__name__)

INDEX_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)

# Failed pulls whose class says something about the puller's address, not about the image.
NOT_A_VERDICT = frozenset({ErrorClass.RATE_LIMITED.value})
# Verdicts that may change by themselves (outages, broken connections): pulled again each run.
TRANSIENT = frozenset(str(cls) for cls, info in CLASS_INFO.items() if info.transient)

_CELL = ("registry", "repository", "tag", "platform")
_VERSION_TAG = re.compile(r"^v?([0-9]+(?:\.[0-9]+)*)")


@dataclass(frozen=True)
class PlannedPull:
    """One engine pulling one platform of one tag, expected at `digest`."""

    engine: str
    version: str
    registry: str
    repository: str
    tag: str
    platform: str
    digest: str
    # Manifest GETs the registry counts for this pull.
    gets: int
    # Why it is needed: new engine, new tag, new digest, or retry (after a transient failure).
    reason: str

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


@dataclass
class Plan:
    """Pulls to do now and pulls deferred to later runs, with what they cost per registry."""

    now: list[PlannedPull] = field(default_factory=list)
    deferred: list[PlannedPull] = field(default_factory=list)
    # Counted GETs this run may spend per registry; None where no limit is known.
    available: dict[str, int | None] = field(default_factory=dict)

    @property
    def gets_now(self) -> dict[str, int]:
        return _gets(self.now)

    @property
    def gets_deferred(self) -> dict[str, int]:
        return _gets(self.deferred)

    def for_engine(self, version: str, engine: str | None = None) -> list[PlannedPull]:
        """The pulls to do now with one engine."""
        return [
            pull
            for pull in self.now
            if pull.version == version and (engine is None or pull.engine == engine)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": [asdict(pull) for pull in self.now],
            "deferred": [asdict(pull) for pull in self.deferred],
            "available": self.available,
            "gets_now": self.gets_now,
            "gets_deferred": self.gets_deferred,
        }

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Plan:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                now=[PlannedPull(**item) for item in raw["now"]],
                deferred=[PlannedPull(**item) for item in raw["deferred"]],
                available=dict(raw.get("available", {})),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path} is not a pull plan: {exc}") from exc


def _gets(pulls: Iterable[PlannedPull]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for pull in pulls:
        totals[pull.registry] += pull.gets
    return dict(sorted(totals.items()))


def plan_pulls(
    history: pd.DataFrame,
    probe: pd.DataFrame,
    engines: Sequence[tuple[str, str]],
    budgets: Mapping[str, int],
    *,
    priority_tags: Sequence[str] = DEFAULT_PRIORITY_TAGS,
    platforms: Sequence[str] | None = None,
    spent: Mapping[str, int] | None = None,
) -> Plan:
    """Plan the pulls of this run.

    `history`: every observation so far (probes and pulls). `probe`: the probe observations of
    this run (older probes are fine too; the newest per cell counts). `engines`: (client,
    version) pairs; a version like `27` covers every `27.x.y` the history holds. `budgets`:
    counted manifest GETs allowed per registry; registries not named are not limited.
    `platforms`: only these platforms, in this order (default: what the probe saw).
    `spent`: GETs this run already made per registry (the probe's); they come off the budget
    of a registry that sent no remaining count, which would have included them.
    """
    targets = _targets(probe, platforms)
    verdicts = _verdicts(history)
    seen_engines = {(v.client, v.client_version) for known in verdicts.values() for v in known}

    candidates: list[PlannedPull] = []
    for target in targets:
        for engine, version in engines:
            known = verdicts.get(_cell_key(target), [])
            reason = _reason(engine, version, target["digest"], known, seen_engines)
            if reason:
                candidates.append(_pull(engine, version, target, reason))

    available = _available(budgets, probe, spent or {})
    plan = _within_budget(candidates, available, priority_tags, platforms)
    log.info(
        "planned %d pulls now (%s GETs), %d deferred",
        len(plan.now),
        plan.gets_now,
        len(plan.deferred),
    )
    return plan


def plan_for_config(
    config: Config,
    history: pd.DataFrame,
    probe: pd.DataFrame,
    *,
    images: Iterable[str] = (),
    versions: Iterable[str] = (),
    spent: Mapping[str, int] | None = None,
) -> Plan:
    """`plan_pulls` for the images (default: all) and engine versions (default: all) of a
    config, with its budgets, priority tags and platforms; `spent` as for `plan_pulls`."""
    names = list(images)
    chosen = [config.image(name) for name in names] or list(config.images)
    locations = image_locations(config, names)
    probe = probe[probe["method"] == "probe"]
    probe = probe[(probe["registry"] + "/" + probe["repository"]).isin(locations)]

    wanted = set(versions)
    engines = config.engines.engines
    unknown = wanted - {version for _, version in engines}
    if unknown:
        raise ConfigError(f"engine versions {sorted(unknown)} are not in the config")
    return plan_pulls(
        history,
        probe,
        [engine for engine in engines if not wanted or engine[1] in wanted],
        config.budgets(),
        priority_tags=_union(tag for image in chosen for tag in image.priority_tags),
        platforms=_union(platform for image in chosen for platform in image.platforms),
        spent=spent,
    )


def image_locations(config: Config, images: Iterable[str] = ()) -> set[str]:
    """`registry/repository` of the named images (all configured images when none)."""
    chosen = [config.image(name) for name in images] or list(config.images)
    return {str(parse_repository(ref)) for image in chosen for ref in image.refs}


def _union(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def counted_gets(media_type: str, kind: str) -> int:
    """Manifest GETs a registry counts for pulling one platform of a tag of this type."""
    if media_type in INDEX_MEDIA_TYPES or kind == "index":
        return 2
    if media_type in MANIFEST_MEDIA_TYPES or kind in ("image", "schema1"):
        return 1
    # Unknown: assume the dearer case, so the budget is never overrun.
    return 2


def engine_matches(version: str, observed: str) -> bool:
    """True when an observed engine version belongs to a configured one: `27` holds `27.5.1`,
    `20.10.24` holds the Debian build `20.10.24+dfsg1`."""
    return observed == version or (
        observed.startswith(version) and observed[len(version)] in ".+-~"
    )


def tag_order(tag: str, priority_tags: Sequence[str] = DEFAULT_PRIORITY_TAGS) -> tuple[Any, ...]:
    """Sort key: priority tags in their order, then version tags newest first, then the rest."""
    if tag in priority_tags:
        return (0, priority_tags.index(tag), (), tag)
    match = _VERSION_TAG.match(tag)
    if match:
        numbers = tuple(-int(part) for part in match.group(1).split("."))
        # The sentinel puts 2.0.1 (-2, 0, -1, 1) before 2.0 (-2, 0, 1).
        return (1, 0, (*numbers, 1), tag)
    return (2, 0, (), tag)


def _targets(probe: pd.DataFrame, platforms: Sequence[str] | None) -> list[dict[Any, Any]]:
    """The newest probed digest per (registry, repository, tag, platform)."""
    if probe.empty:
        return []
    rows = probe
    if "method" in rows.columns:
        rows = rows[rows["method"] == "probe"]
    rows = rows[rows["digest"].fillna("") != ""]
    rows = rows.sort_values(["observed_at", "run_id"], kind="stable")
    rows = rows.drop_duplicates(list(_CELL), keep="last")

    wanted = list(platforms) if platforms else None
    targets = []
    for row in rows.to_dict("records"):
        for platform in [row["platform"]] if row["platform"] else (wanted or DEFAULT_PLATFORMS):
            if wanted is None or platform in wanted:
                gets = counted_gets(str(row.get("media_type", "")), str(row.get("kind", "")))
                targets.append({**row, "platform": platform, "gets": gets})
    return targets


def _cell_key(row: Mapping[Any, Any]) -> tuple[str, ...]:
    return tuple(str(row[column]) for column in _CELL)


class _Verdict(NamedTuple):
    client: str
    client_version: str
    digest: str
    # False for a failure of a transient class (an outage, a broken connection): the cell is
    # tried again until it gets a lasting verdict.
    lasting: bool


def _verdicts(history: pd.DataFrame) -> dict[tuple[str, ...], list[_Verdict]]:
    """Per cell, every pull that gave a verdict, oldest first."""
    if history.empty:
        return {}
    pulls = history[history["method"] == "pull"]
    pulls = pulls[(pulls["outcome"] != "error") & ~pulls["error_class"].isin(NOT_A_VERDICT)]
    pulls = pulls.sort_values(["observed_at", "run_id"], kind="stable")
    probed = _probed_digests(history)
    verdicts: dict[tuple[str, ...], list[_Verdict]] = defaultdict(list)
    for row in pulls.to_dict("records"):
        digest = row["digest"] or _digest_at(probed, row)
        lasting = row["verdict"] not in TRANSIENT
        verdicts[_cell_key(row)].append(
            _Verdict(row["client"], row["client_version"], digest, lasting)
        )
    return verdicts


def _probed_digests(history: pd.DataFrame) -> dict[tuple[str, ...], list[tuple[str, str]]]:
    """Per tag, the (observed_at, digest) of every probe, oldest first."""
    probes = history[(history["method"] == "probe") & (history["digest"] != "")]
    found: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
    for row in probes.sort_values("observed_at", kind="stable").to_dict("records"):
        found[(row["registry"], row["repository"], row["tag"])].append(
            (row["observed_at"], row["digest"])
        )
    return found


def _digest_at(
    probed: Mapping[tuple[str, ...], list[tuple[str, str]]], row: Mapping[Any, Any]
) -> str:
    """The digest the tag had when a pull that recorded none was made: the probe just before."""
    seen = probed.get((row["registry"], row["repository"], row["tag"]), [])
    index = bisect.bisect_right([at for at, _ in seen], row["observed_at"])
    return seen[index - 1][1] if index else ""


def _reason(
    engine: str,
    version: str,
    digest: str,
    known: list[_Verdict],
    seen_engines: set[tuple[str, str]],
) -> str:
    """Why this engine must pull this cell, or "" when it has a lasting verdict for `digest`."""
    mine = [v for v in known if v.client == engine and engine_matches(version, v.client_version)]
    same = [v for v in mine if v.digest == digest]
    if same:
        return "" if same[-1].lasting else "retry"
    if mine:
        return "new digest"
    if not any(client == engine and engine_matches(version, v) for client, v in seen_engines):
        return "new engine"
    return "new tag"


def _pull(engine: str, version: str, target: Mapping[str, Any], reason: str) -> PlannedPull:
    return PlannedPull(
        engine=engine,
        version=version,
        registry=target["registry"],
        repository=target["repository"],
        tag=target["tag"],
        platform=target["platform"],
        digest=target["digest"],
        gets=int(target["gets"]),
        reason=reason,
    )


def _available(
    budgets: Mapping[str, int], probe: pd.DataFrame, spent: Mapping[str, int]
) -> dict[str, int | None]:
    """Counted GETs this run may spend per registry: the budget less what the run spent, or
    the remaining count the latest probe of the registry saw when that is lower (its lowest,
    as the count only falls within a run)."""
    available: dict[str, int | None] = {
        name: max(0, int(value) - spent.get(name, 0)) for name, value in budgets.items()
    }
    if probe.empty or "ratelimit_remaining" not in probe.columns:
        return available
    remaining = pd.to_numeric(probe["ratelimit_remaining"], errors="coerce")
    seen = probe.assign(remaining=remaining)[remaining.notna()]
    seen = seen.sort_values(["observed_at", "run_id"], kind="stable")
    for registry, group in seen.groupby("registry", sort=True):
        latest_run = group[group["run_id"] == group["run_id"].iloc[-1]]
        lowest = max(0, int(latest_run["remaining"].min()))
        budget = available.get(str(registry))
        available[str(registry)] = lowest if budget is None else min(budget, lowest)
    return available


def _within_budget(
    candidates: list[PlannedPull],
    available: Mapping[str, int | None],
    priority_tags: Sequence[str],
    platforms: Sequence[str] | None,
) -> Plan:
    """Take candidates in priority order while each registry's budget lasts.

    Once one pull of a registry does not fit, every later pull of that registry waits too, so
    the pulls done are always a prefix of the fixed order and a later run resumes there.
    """
    platform_rank = {name: i for i, name in enumerate(platforms or ())}

    def order(pull: PlannedPull) -> tuple[Any, ...]:
        return (
            tag_order(pull.tag, priority_tags),
            pull.registry,
            pull.repository,
            platform_rank.get(pull.platform, len(platform_rank)),
            pull.platform,
        )

    plan = Plan(available=dict(available))
    spent: dict[str, int] = defaultdict(int)
    full: set[str] = set()
    for pull in sorted(candidates, key=order):
        limit = available.get(pull.registry)
        if pull.registry in full or (
            limit is not None and spent[pull.registry] + pull.gets > limit
        ):
            full.add(pull.registry)
            plan.deferred.append(pull)
            continue
        spent[pull.registry] += pull.gets
        plan.now.append(pull)
    return plan
