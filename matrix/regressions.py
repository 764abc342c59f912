"""Regressions and recoveries of pulls, kept as GitHub issues.

A regression is a cell (registry, repository, tag, platform, engine) whose verdict was `ok` and
is now a failure, or a registry where every engine's pulls of the latest run fail. Each has one
issue, found again by the stable key in its title: a regression opens it, a failure that goes
on adds a comment once per run, and a recovery closes it. Harness errors (`outcome=error`) and
rate-limited attempts are not verdicts and never count.

Issues are handled with the `gh` command line through `GitHub`, which reads its token from the
environment itself: no token ever passes through this module, and messages are scrubbed of
anything that looks like a credential before they are written into an issue.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from matrix.classify import CLASS_INFO, ErrorClass
from matrix.errors import MatrixError, redact_message
from matrix.plan import NOT_A_VERDICT, engine_matches

log = logging.getLogger(__name__)

MARKER = "[pull-matrix]"
_RUN_NOTE = "<!-- pull-matrix run {run_id} -->"
_MESSAGE_LIMIT = 2000
_TOKEN_ENV = ("GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN")
_NOT_PLAIN = re.compile(r"[^A-Za-z0-9_.:+/ -]")


@dataclass(frozen=True)
class Change:
    """What happened to one regression key between the previous verdicts and the latest run."""

    # regression (was ok, now fails), failing (still fails), recovery (pulls again)
    kind: str
    # cell or registry
    scope: str
    key: str
    registry: str
    verdict: str = ""
    error_class: str = ""
    message: str = ""
    run_id: str = ""
    observed_at: str = ""
    digest: str = ""
    last_ok_at: str = ""
    engine_version: str = ""

    @property
    def title(self) -> str:
        if self.scope == "registry":
            return f"{MARKER} {self.key}: every pull fails"
        return f"{MARKER} {self.key}: pull fails"


def engine_label(client: str, observed: str, versions: Sequence[str] = ()) -> str:
    """`docker 27` for an observed 27.5.1 when 27 is configured: the key survives updates."""
    matching = [version for version in versions if engine_matches(version, observed)]
    return f"{client} {max(matching, key=len) if matching else observed}"


def _verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    pulls = frame[(frame["method"] == "pull") & (frame["outcome"] != "error")]
    return pulls[~pulls["error_class"].isin(NOT_A_VERDICT)]


def _keyed(frame: pd.DataFrame, versions: Sequence[str]) -> pd.DataFrame:
    """Verdicts with their regression key, newest last."""
    rows = _verdicts(frame)
    if rows.empty:
        return rows.assign(key=pd.Series(dtype=str))
    keys = [
        plain(
            f"{r.registry}/{r.repository}:{r.tag} {r.platform} "
            f"{engine_label(str(r.client), str(r.client_version), versions)}"
        )
        for r in rows.itertuples()
    ]
    return rows.assign(key=keys).sort_values(["observed_at", "run_id"], kind="stable")


def split_latest(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(previous, latest): each engine's newest pull run against everything before it."""
    pulls = frame[frame["method"] == "pull"]
    if pulls.empty:
        return frame, frame.iloc[0:0]
    newest = (
        pulls.sort_values(["observed_at", "run_id"], kind="stable")
        .groupby(["client", "client_version"])["run_id"]
        .last()
    )
    is_latest = frame["run_id"].isin(set(newest)) & (frame["method"] == "pull")
    return frame[~is_latest], frame[is_latest]


def detect(
    previous: pd.DataFrame, latest: pd.DataFrame, versions: Sequence[str] = ()
) -> list[Change]:
    """Regressions, continuing failures and recoveries of the latest run, sorted by key."""
    before = _keyed(previous, versions)
    now = _keyed(latest, versions)
    if now.empty:
        return []
    registry_changes = _registry_changes(before, now)
    covered = {c.registry for c in registry_changes if c.kind != "recovery"}

    last = before.drop_duplicates("key", keep="last")
    last_outcome = dict(zip(last["key"], last["outcome"], strict=True))
    ok_before = before[before["outcome"] == "ok"].drop_duplicates("key", keep="last")
    last_ok = dict(zip(ok_before["key"], ok_before["observed_at"], strict=True))
    changes = list(registry_changes)
    rows: Iterable[Any] = now.drop_duplicates("key", keep="last").itertuples()
    for row in rows:
        if row.outcome == "ok":
            changes.append(
                Change("recovery", "cell", row.key, plain(row.registry), run_id=plain(row.run_id))
            )
            continue
        if row.registry in covered:
            continue
        kind = "regression" if last_outcome.get(row.key) == "ok" else "failing"
        changes.append(_failure(kind, "cell", row, last_ok.get(row.key, "")))
    return sorted(changes, key=lambda change: (change.scope != "registry", change.key))


def _failure(kind: str, scope: str, row: Any, last_ok_at: str) -> Change:
    """A failure from an observation row; every field but the message is made plain text."""
    return Change(
        kind,
        scope,
        row.key if scope == "cell" else plain(f"registry {row.registry}"),
        plain(row.registry),
        verdict=plain(row.verdict),
        error_class=plain(row.error_class),
        message=row.message,
        run_id=plain(row.run_id),
        observed_at=plain(row.observed_at),
        digest=plain(row.digest),
        last_ok_at=plain(last_ok_at),
        engine_version=plain(f"{row.client} {row.client_version}"),
    )


def plain(text: str) -> str:
    """`text` with only the characters names, versions, digests and times need, so that data
    from registries and engines cannot add markup, links or mentions to an issue."""
    return _NOT_PLAIN.sub("", str(text))


def _registry_changes(before: pd.DataFrame, now: pd.DataFrame) -> list[Change]:
    """A registry fails as a whole when, in the latest run, every pull of every engine from it
    failed, over at least two tags, for causes on the registry's side or the way to it (an
    outage, refused access, the network). Broken images fail per cell; so does a registry
    serving a single tag, which cannot be told apart from a broken tag."""
    changes = []
    for registry, group in now.groupby("registry", sort=True):
        key = f"registry {registry}"
        if (group["outcome"] == "ok").any():
            changes.append(Change("recovery", "registry", plain(key), plain(str(registry))))
            continue
        if group[["repository", "tag"]].drop_duplicates().shape[0] < 2:
            continue
        if not all(_about(verdict) in ("registry", "network") for verdict in group["verdict"]):
            continue
        earlier = before[before["registry"] == registry]
        kind = "regression" if (earlier["outcome"] == "ok").any() else "failing"
        ok_rows = earlier[earlier["outcome"] == "ok"]
        last_ok_at = str(ok_rows["observed_at"].iloc[-1]) if not ok_rows.empty else ""
        changes.append(_failure(kind, "registry", next(group.iloc[-1:].itertuples()), last_ok_at))
    return changes


def issue_body(change: Change, runbook_url: str, secrets: Iterable[str] = ()) -> str:
    """The issue text of a failure: what fails, its class, the engine's message, the runbook."""
    try:
        info = CLASS_INFO[ErrorClass(change.verdict)]
        meaning = f"{info.title}. {info.explanation}\n\n**What to do:** {info.action}"
    except ValueError:
        meaning = "No description for this class."
    where = (
        f"Every pull from **{change.registry}** failed in the latest run."
        if change.scope == "registry"
        else f"**{change.key}** failed to pull."
    )
    message = redact_message(change.message, list(secrets))[:_MESSAGE_LIMIT].replace("```", "'''")
    lines = [
        where,
        "",
        f"- Class: `{change.verdict}`"
        + (f" (symptom: `{change.error_class}`)" if change.error_class != change.verdict else ""),
        f"- Engine: {change.engine_version}",
        f"- Observed: {change.observed_at} (run {change.run_id})",
        f"- Digest: {change.digest or 'not recorded'}",
        f"- Last pulled fine: {change.last_ok_at or 'never recorded'}",
        f"- Runbook: {runbook_url}",
        "",
        meaning,
        "",
        "Engine's message:",
        "",
        "```text",
        message or "(no message)",
        "```",
        "",
        _RUN_NOTE.format(run_id=change.run_id),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Action:
    """What was done (or, in a dry run, would be done) about one change."""

    verb: str  # create, comment, close
    key: str
    number: int | None
    command: list[str]


class GitHub:
    """GitHub issues through the `gh` command line. `gh` finds its token in the environment."""

    def __init__(
        self,
        repository: str = "",
        executable: str = "gh",
        dry_run: bool = False,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.repository = repository
        self.executable = executable
        self.dry_run = dry_run
        self.echo = echo

    def _command(self, *args: str) -> list[str]:
        command = [self.executable, *args]
        if self.repository:
            command += ["--repo", self.repository]
        return command

    def _read(self, *args: str) -> str:
        return self._execute(self._command(*args))

    def _execute(self, command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MatrixError(f"cannot run {command[0]}: {exc}") from exc
        if done.returncode != 0:
            detail = redact_message(done.stderr.strip()[-500:], list(_env_secrets()))
            raise MatrixError(f"`{shlex.join(command[:3])}` failed ({done.returncode}): {detail}")
        return done.stdout

    def write(self, *args: str) -> list[str]:
        command = self._command(*args)
        if self.dry_run:
            self.echo(shlex.join(command))
        else:
            self._execute(command)
        return command

    def open_issues(self) -> dict[str, int]:
        """Open issues carrying the marker, by key."""
        try:
            raw = self._read(
                "issue", "list", "--state", "open", "--limit", "1000", "--json", "number,title"
            )
            issues = json.loads(raw or "[]")
        except (MatrixError, ValueError) as exc:
            if not self.dry_run:
                raise MatrixError(f"cannot list open issues: {exc}") from exc
            log.warning("cannot list open issues (%s); assuming none", exc)
            return {}
        found = {}
        for issue in issues:
            key = _key_of(str(issue.get("title", "")))
            if key:
                found[key] = int(issue["number"])
        return found

    def mentions(self, number: int, text: str) -> bool:
        """True when the issue's body or a comment contains `text`."""
        try:
            raw = json.loads(self._read("issue", "view", str(number), "--json", "body,comments"))
        except (MatrixError, ValueError) as exc:
            if not self.dry_run:
                raise MatrixError(f"cannot read issue #{number}: {exc}") from exc
            return False
        texts = [raw.get("body", "")] + [c.get("body", "") for c in raw.get("comments", [])]
        return any(text in str(body) for body in texts)


def _key_of(title: str) -> str:
    if not title.startswith(MARKER + " "):
        return ""
    rest = title[len(MARKER) + 1 :]
    for suffix in (": every pull fails", ": pull fails"):
        if rest.endswith(suffix):
            return rest[: -len(suffix)]
    return ""


def _env_secrets() -> list[str]:
    return [os.environ[name] for name in _TOKEN_ENV if os.environ.get(name)]


def sync_issues(
    changes: Sequence[Change],
    github: GitHub,
    runbook_url: Callable[[str], str],
    secrets: Iterable[str] = (),
) -> list[Action]:
    """Open, update or close one issue per key, as the changes say."""
    secrets = [*secrets, *_env_secrets()]
    open_issues = github.open_issues()
    actions = []
    for change in changes:
        number = open_issues.get(change.key)
        if change.kind == "recovery":
            if number is not None:
                body = f"Pulls again in run {change.run_id}; closing."
                command = github.write("issue", "close", str(number), "--comment", body)
                actions.append(Action("close", change.key, number, command))
            continue
        body = issue_body(change, runbook_url(change.verdict), secrets)
        if number is not None:
            if github.mentions(number, _RUN_NOTE.format(run_id=change.run_id)):
                continue
            command = github.write("issue", "comment", str(number), "--body", body)
            actions.append(Action("comment", change.key, number, command))
        elif change.kind == "regression":
            command = github.write("issue", "create", "--title", change.title, "--body", body)
            actions.append(Action("create", change.key, None, command))
    for action in actions:
        log.info("%s issue for %s", action.verb, action.key)
    return actions


def _about(verdict: str) -> str:
    """Whom a verdict is about (image, registry, client, network), or "unknown"."""
    try:
        return CLASS_INFO[ErrorClass(verdict)].about
    except ValueError:
        return "unknown"
