"""The main job: probe every configured reference, pull what the plan allows, write one shard.

    config ──► probe (HEADs; GETs only for new digests) ──► plan (history + rate budgets)
           ──► pull (engines in parallel, one pull at a time per engine) ──► one shard

Everything one run observed goes into a single immutable shard, written once at the end; an
engine that dies or a registry that fails becomes observations, not an aborted run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from matrix.analysis import Analysis
from matrix.config import Config
from matrix.engines.model import Engine
from matrix.engines.provision import provision
from matrix.engines.pull import AnalysisKey, analysis_key, pull_many
from matrix.observations import (
    Observation,
    load,
    new_run_id,
    to_frame,
    write_roles,
    write_shard,
)
from matrix.plan import Plan, PlannedPull, engine_matches, plan_for_config
from matrix.probe import probe_repository
from matrix.reference import parse_repository
from matrix.registry import CredentialStore, ManifestStore, RegistryClient

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


@dataclass
class CollectResult:
    run_id: str
    shard: Path | None
    probes: list[Observation] = field(default_factory=list)
    pulls: list[Observation] = field(default_factory=list)
    plan: Plan = field(default_factory=Plan)
    # Manifest GETs the registries count, per registry: by the probe, and by the engines' pulls.
    probe_gets: dict[str, int] = field(default_factory=dict)
    pull_gets: dict[str, int] = field(default_factory=dict)

    @property
    def observations(self) -> list[Observation]:
        return [*self.probes, *self.pulls]

    def counted_gets(self) -> int:
        return sum(self.probe_gets.values()) + sum(self.pull_gets.values())


def probe_all(
    config: Config, run_id: str, on_tag: Callable[[], None] | None = None
) -> tuple[list[Observation], dict[AnalysisKey, Analysis], dict[str, int]]:
    """Probe every reference of every image; return observations, analyses and counted GETs."""
    insecure = [name for name, registry in config.registries.items() if registry.insecure]
    store = ManifestStore(Path(config.data_dir) / "manifests")
    observations: list[Observation] = []
    analyses: dict[AnalysisKey, Analysis] = {}
    with RegistryClient(insecure=insecure, credentials=CredentialStore(), store=store) as client:
        for image in config.images:
            for ref in image.refs:
                repository = parse_repository(ref)
                run = probe_repository(
                    client,
                    repository,
                    run_id,
                    image.platforms,
                    tags=list(image.tags) or None,
                    on_tag=(lambda _probe: on_tag()) if on_tag else None,
                )
                observations += run.observations
                for probe in run.tags:
                    if probe.analysis is not None:
                        key = analysis_key(probe.repository.with_tag(probe.tag))
                        analyses[key] = probe.analysis
        gets = {registry: count for registry, count in client.manifest_gets.items() if count}
    return observations, analyses, dict(sorted(gets.items()))


def make_plan(
    config: Config,
    probes: Sequence[Observation],
    history: pd.DataFrame,
    spent: dict[str, int] | None = None,
) -> Plan:
    """The pulls of this run; `spent` is what the probe already took from each budget."""
    return plan_for_config(config, history, to_frame(probes), spent=spent or {})


def assign(plan: Plan, engines: Sequence[Engine]) -> list[tuple[Engine, list[PlannedPull]]]:
    """The plan's pulls for each engine; a planned version no engine reports is left out."""
    work: list[tuple[Engine, list[PlannedPull]]] = []
    for engine in engines:
        jobs = [pull for pull in plan.now if engine_matches(pull.version, engine.version)]
        if jobs:
            work.append((engine, jobs))
    return work


def pull_planned(
    work: Sequence[tuple[Engine, list[PlannedPull]]],
    analyses: dict[AnalysisKey, Analysis],
    run_id: str,
    on_observation: Callable[[Observation], None] | None = None,
) -> list[Observation]:
    """Run the assigned pulls: engines in parallel, each engine's pulls one after another."""

    def run(engine: Engine, jobs: list[PlannedPull]) -> list[Observation]:
        observations: list[Observation] = []
        for job in jobs:
            observations += pull_many(
                [engine],
                [job.reference],
                [job.platform],
                analyses=analyses,
                run_id=run_id,
                on_observation=on_observation,
            )
        return observations

    if not work:
        return []
    with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="engine") as pool:
        results = list(pool.map(lambda item: run(*item), work))
    return [observation for per_engine in results for observation in per_engine]


def collect(
    config: Config,
    *,
    run_id: str | None = None,
    probe_only: bool = False,
    lab_dir: Path | None = None,
    endpoints: Sequence[str] = (),
    on_tag: Callable[[], None] | None = None,
    on_observation: Callable[[Observation], None] | None = None,
) -> CollectResult:
    """One run of the main job, written as one shard under the config's data directory."""
    run_id = run_id or new_run_id()
    data_dir = Path(config.data_dir)
    history = load([data_dir / "observations"]) if (data_dir / "observations").exists() else None

    probes, analyses, probe_gets = probe_all(config, run_id, on_tag)
    result = CollectResult(run_id=run_id, shard=None, probes=probes, probe_gets=probe_gets)
    result.plan = make_plan(
        config, probes, history if history is not None else to_frame([]), probe_gets
    )

    if result.plan.now and not probe_only:
        insecure = [name for name, registry in config.registries.items() if registry.insecure]
        with provision(
            config.engines.provisioner,
            versions=list(config.engines.versions),
            endpoints=list(endpoints) or [e for e in [config.engines.endpoint] if e],
            insecure_registries=insecure,
            lab_dir=lab_dir,
        ) as engines:
            work = assign(result.plan, engines)
            result.pulls = pull_planned(work, analyses, run_id, on_observation)
        for _engine, jobs in work:
            for job in jobs:
                result.pull_gets[job.registry] = result.pull_gets.get(job.registry, 0) + job.gets

    if result.observations:
        result.shard = write_shard(result.observations, data_dir, run_id)
    roles = {name: registry.role for name, registry in config.registries.items() if registry.role}
    if roles:
        write_roles(data_dir, roles)
    log.info(
        "run %s: %d probe and %d pull observations, %d counted manifest GETs",
        run_id,
        len(result.probes),
        len(result.pulls),
        result.counted_gets(),
    )
    return result
