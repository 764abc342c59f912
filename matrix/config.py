"""What to check: images, engines, registries and where results go, read from a TOML file.

A config file looks like `pull-matrix.toml` at the top of the repository::

    data_dir = "data"                               # observations live in <data_dir>/observations
    site_url = "https://example.org/pull-matrix/"   # where the site is published

    [[images]]
    name = "kivy/buildozer"
    refs = ["docker.io/kivy/buildozer", "ghcr.io/kivy/buildozer"]
    platforms = ["linux/amd64", "linux/arm64"]
    # tags = ["latest", "stable"]                   # default: every published tag

    [engines]
    provisioner = "dind"                            # lab | dind | host
    versions = ["20.10", "23.0", "29"]

    [registries."docker.io"]
    budget = 100                                    # counted manifest GETs per window
    window_hours = 6
    # Names of environment variables (not values), as `probe` reads credentials.
    username_env = "PULL_MATRIX_USERNAME_DOCKER_IO"
    password_env = "PULL_MATRIX_PASSWORD_DOCKER_IO"

Every key is checked: an unknown key, a wrong type or a value that does not parse raises
`ConfigError` naming the file and the key. Relative paths are relative to the config file.
Credentials are never part of the config: it only names the environment variables that hold them.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrix.errors import ConfigError, MatrixError
from matrix.platforms import DEFAULT_PLATFORMS, parse_platform
from matrix.reference import is_valid_tag, parse_repository

CONFIG_FILE = "pull-matrix.toml"
LAB_CONFIG_FILE = "pull-matrix.lab.toml"
CONFIG_ENV = "PULL_MATRIX_CONFIG"

PROVISIONERS = ("lab", "dind", "host")
DEFAULT_ENGINE_VERSIONS = ("20.10", "23.0", "24.0", "25.0", "26.1", "27", "28", "29")
DEFAULT_PRIORITY_TAGS = ("latest", "stable")
DEFAULT_SITE_URL = "https://kivy.github.io/pull-matrix/"
DEFAULT_RUNBOOK_PAGE = "runbook/#{error_class}"

_ENGINE_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


@dataclass(frozen=True)
class ImageConfig:
    """One image, published under one repository on each of several registries."""

    name: str
    refs: tuple[str, ...]
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    # Only these tags; empty means every published tag.
    tags: tuple[str, ...] = ()
    # Tags checked first when the rate limit allows only part of the work.
    priority_tags: tuple[str, ...] = DEFAULT_PRIORITY_TAGS

    @property
    def registries(self) -> tuple[str, ...]:
        return tuple(parse_repository(ref).registry for ref in self.refs)


@dataclass(frozen=True)
class EngineConfig:
    """The Docker engines that pull, and how they are started.

    `lab` starts Debian-packaged dockerd binaries on this machine, `dind` runs
    `docker:<version>-dind` containers, `host` uses an engine that is already running at
    `endpoint`.
    """

    provisioner: str = "dind"
    versions: tuple[str, ...] = DEFAULT_ENGINE_VERSIONS
    # The `client` name that pull observations carry for these engines.
    client: str = "docker"
    endpoint: str = ""

    @property
    def engines(self) -> list[tuple[str, str]]:
        """(client, version) pairs, as the planner takes them."""
        return [(self.client, version) for version in self.versions]


@dataclass(frozen=True)
class RegistryConfig:
    """Limits, credentials and connection details of one registry."""

    name: str
    # Counted manifest GETs allowed per window; None means no known limit.
    budget: int | None = None
    window_hours: float = 6.0
    username_env: str = ""
    password_env: str = ""
    # Plain HTTP, as the lab's loopback registries speak it.
    insecure: bool = False
    # The public registry this one stands in for (the lab's registries), or "".
    role: str = ""

    def credentials(self, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """(username, password) from the named environment variables, or None when unset."""
        environ = os.environ if environ is None else environ
        if not self.username_env or not self.password_env:
            return None
        username = environ.get(self.username_env, "")
        password = environ.get(self.password_env, "")
        return (username, password) if username and password else None


@dataclass(frozen=True)
class AlertConfig:
    """Where regression issues go."""

    # owner/name of the GitHub repository; empty means the one `gh` finds from the checkout.
    repository: str = ""
    runbook_page: str = DEFAULT_RUNBOOK_PAGE


@dataclass(frozen=True)
class Config:
    images: tuple[ImageConfig, ...]
    engines: EngineConfig = field(default_factory=EngineConfig)
    registries: Mapping[str, RegistryConfig] = field(default_factory=dict)
    data_dir: Path = Path("data")
    site_url: str = DEFAULT_SITE_URL
    alerts: AlertConfig = field(default_factory=AlertConfig)
    source: Path | None = None

    def registry(self, name: str) -> RegistryConfig:
        """The settings of registry `name` (defaults when the file says nothing about it)."""
        return self.registries.get(name) or RegistryConfig(name)

    def budgets(self) -> dict[str, int]:
        """Counted manifest GETs per window, for every registry that has a limit."""
        return {
            name: registry.budget
            for name, registry in sorted(self.registries.items())
            if registry.budget is not None
        }

    def image(self, name: str) -> ImageConfig:
        for image in self.images:
            if image.name == name:
                return image
        known = ", ".join(image.name for image in self.images)
        raise ConfigError(f"no image named {name!r} in the config (known: {known})")

    def runbook_url(self, error_class: str) -> str:
        page = self.alerts.runbook_page.format(error_class=error_class)
        return f"{self.site_url.rstrip('/')}/{page.lstrip('/')}"


def default_config() -> Config:
    """The built-in defaults; `pull-matrix.toml` at the top of the repository says the same."""
    return Config(
        images=(
            ImageConfig(
                name="kivy/buildozer",
                refs=("docker.io/kivy/buildozer", "ghcr.io/kivy/buildozer"),
            ),
        ),
        registries={
            "docker.io": RegistryConfig(
                "docker.io",
                budget=100,
                window_hours=6.0,
                username_env="PULL_MATRIX_USERNAME_DOCKER_IO",
                password_env="PULL_MATRIX_PASSWORD_DOCKER_IO",
            ),
            "ghcr.io": RegistryConfig(
                "ghcr.io",
                username_env="PULL_MATRIX_USERNAME_GHCR_IO",
                password_env="PULL_MATRIX_PASSWORD_GHCR_IO",
            ),
        },
    )


def find_config(path: Path | str | None = None, *, lab: bool = False) -> Path | None:
    """The config file to use: `path`, else $PULL_MATRIX_CONFIG, else the one in the current
    directory (`pull-matrix.lab.toml` with `lab`), else None for the built-in defaults."""
    if path:
        return Path(path)
    if os.environ.get(CONFIG_ENV) and not lab:
        return Path(os.environ[CONFIG_ENV])
    candidate = Path(LAB_CONFIG_FILE if lab else CONFIG_FILE)
    if candidate.exists():
        return candidate
    if lab:
        raise ConfigError(f"no {LAB_CONFIG_FILE} in {Path.cwd()}; pass --config")
    return None


def load_config(path: Path | str | None = None, *, lab: bool = False) -> Config:
    """Read and check a config file (see `find_config` for which one)."""
    found = find_config(path, lab=lab)
    if found is None:
        return default_config()
    try:
        raw = tomllib.loads(found.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {found} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {found} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {found} is not valid TOML: {exc}") from exc
    return parse_config(raw, source=found)


def parse_config(raw: Mapping[str, Any], source: Path | None = None) -> Config:
    """Build a Config from parsed TOML, checking every key."""
    where = str(source) if source else "config"
    _known(raw, {"data_dir", "site_url", "images", "engines", "registries", "alerts"}, where)
    base = source.resolve().parent if source else Path.cwd()

    images = _list(raw, "images", where)
    if not images:
        raise ConfigError(f"{where}: `images` must list at least one image")
    parsed_images = tuple(_image(item, f"{where}: images[{i}]") for i, item in enumerate(images))
    names = [image.name for image in parsed_images]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: image names must be unique, got {names}")

    site_url = _string(raw, "site_url", where, DEFAULT_SITE_URL)
    if not site_url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}: `site_url` must be an http(s) URL, not {site_url!r}")

    registries = _table(raw, "registries", where)
    return Config(
        images=parsed_images,
        engines=_engines(_table(raw, "engines", where), f"{where}: engines"),
        registries={
            name: _registry(name, _as_table(value, f"{where}: registries.{name}"), where)
            for name, value in registries.items()
        },
        data_dir=base / _string(raw, "data_dir", where, "data"),
        site_url=site_url,
        alerts=_alerts(_table(raw, "alerts", where), f"{where}: alerts"),
        source=source,
    )


def _image(raw: Any, where: str) -> ImageConfig:
    raw = _as_table(raw, where)
    _known(raw, {"name", "refs", "platforms", "tags", "priority_tags"}, where)
    refs = tuple(_strings(raw, "refs", where))
    if not refs:
        raise ConfigError(f"{where}: `refs` must name at least one repository")
    for ref in refs:
        try:
            parse_repository(ref)
        except MatrixError as exc:
            raise ConfigError(f"{where}: refs: {exc}") from exc
    name = _string(raw, "name", where, refs[0])
    if not _IMAGE_NAME.match(name):
        raise ConfigError(f"{where}: image name {name!r} has characters a name cannot have")

    platforms = _strings(raw, "platforms", where, DEFAULT_PLATFORMS)
    try:
        platforms = [str(parse_platform(text)) for text in platforms]
    except ValueError as exc:
        raise ConfigError(f"{where}: platforms: {exc}") from exc

    tags = _strings(raw, "tags", where)
    priority = _strings(raw, "priority_tags", where, DEFAULT_PRIORITY_TAGS)
    for tag in [*tags, *priority]:
        if not is_valid_tag(tag):
            raise ConfigError(f"{where}: {tag!r} is not a valid tag")
    return ImageConfig(name, refs, tuple(platforms), tuple(tags), tuple(priority))


def _engines(raw: Mapping[str, Any], where: str) -> EngineConfig:
    _known(raw, {"provisioner", "versions", "client", "endpoint"}, where)
    provisioner = _string(raw, "provisioner", where, "dind")
    if provisioner not in PROVISIONERS:
        raise ConfigError(
            f"{where}: provisioner must be one of {', '.join(PROVISIONERS)}, not {provisioner!r}"
        )
    versions = _strings(raw, "versions", where, DEFAULT_ENGINE_VERSIONS)
    if not versions:
        raise ConfigError(f"{where}: `versions` must name at least one engine version")
    for version in versions:
        if not _ENGINE_VERSION.match(version):
            raise ConfigError(f"{where}: engine version {version!r} is not like 27 or 26.1.5")
    if len(set(versions)) != len(versions):
        raise ConfigError(f"{where}: engine versions repeat: {versions}")
    endpoint = _string(raw, "endpoint", where, "")
    if provisioner == "host" and not endpoint:
        raise ConfigError(f"{where}: provisioner `host` needs `endpoint` (e.g. unix:///…sock)")
    client = _string(raw, "client", where, "docker")
    return EngineConfig(provisioner, tuple(versions), client, endpoint)


def _registry(name: str, raw: Mapping[str, Any], where: str) -> RegistryConfig:
    where = f"{where}: registries.{name}"
    _known(
        raw, {"budget", "window_hours", "username_env", "password_env", "insecure", "role"}, where
    )
    try:
        parse_repository(f"{name}/probe")
    except MatrixError as exc:
        raise ConfigError(f"{where}: {name!r} is not a registry host") from exc
    budget = raw.get("budget")
    if budget is not None and (type(budget) is not int or budget < 0):
        raise ConfigError(f"{where}: `budget` must be a whole number ≥ 0, not {budget!r}")
    window = raw.get("window_hours", 6.0)
    if type(window) not in (int, float) or window <= 0:
        raise ConfigError(f"{where}: `window_hours` must be a positive number, not {window!r}")
    names = {key: _string(raw, key, where, "") for key in ("username_env", "password_env")}
    for key, value in names.items():
        if value and not _ENV_NAME.match(value):
            raise ConfigError(
                f"{where}: `{key}` names an environment variable; {value!r} is not a variable name"
            )
    insecure = raw.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{where}: `insecure` must be true or false")
    return RegistryConfig(
        name,
        budget=budget,
        window_hours=float(window),
        insecure=insecure,
        role=_string(raw, "role", where, ""),
        **names,
    )


def _alerts(raw: Mapping[str, Any], where: str) -> AlertConfig:
    _known(raw, {"repository", "runbook_page"}, where)
    repository = _string(raw, "repository", where, "")
    if repository and not re.match(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", repository):
        raise ConfigError(f"{where}: `repository` must be OWNER/NAME, not {repository!r}")
    page = _string(raw, "runbook_page", where, DEFAULT_RUNBOOK_PAGE)
    try:
        page.format(error_class="ok")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{where}: `runbook_page` may only use the {{error_class}} placeholder"
        ) from exc
    return AlertConfig(repository, page)


def _known(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; expected one of {', '.join(sorted(allowed))}"
        )


def _as_table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, not {type(value).__name__}")
    return value


def _table(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    return _as_table(raw.get(key, {}), f"{where}: `{key}`")


def _list(raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}: `{key}` must be a list, not {type(value).__name__}")
    return value


def _string(raw: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: `{key}` must be a string, not {type(value).__name__}")
    return value


def _strings(
    raw: Mapping[str, Any], key: str, where: str, default: tuple[str, ...] = ()
) -> list[str]:
    value = raw.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: `{key}` must be a list of strings")
    return list(value)


QUERIES = ("data-dir", "images", "refs", "platforms", "tags", "versions", "provisioner", "insecure")


def query(config: Config, what: str, image: str = "") -> list[str]:
    """Values of the config for shell scripts, one item per line: `data-dir`, `images`,
    `versions`, `provisioner`, `insecure` (plain-HTTP registries), and `refs`, `platforms`,
    `tags` of one image."""
    if what in ("refs", "platforms", "tags"):
        if not image:
            raise ConfigError(f"`{what}` needs an image name")
        return list(getattr(config.image(image), what))
    answers: dict[str, Callable[[], list[str]]] = {
        "data-dir": lambda: [str(config.data_dir)],
        "images": lambda: [item.name for item in config.images],
        "versions": lambda: list(config.engines.versions),
        "provisioner": lambda: [config.engines.provisioner],
        "insecure": lambda: [name for name, item in config.registries.items() if item.insecure],
    }
    if what not in answers:
        raise ConfigError(f"unknown query {what!r}; expected one of {', '.join(QUERIES)}")
    return answers[what]()


def main(argv: Sequence[str]) -> int:
    """`python -m matrix.config QUERY [IMAGE]`, with $PULL_MATRIX_CONFIG naming the file."""
    if not 1 <= len(argv) <= 2:
        print(f"usage: python -m matrix.config {{{'|'.join(QUERIES)}}} [IMAGE]", file=sys.stderr)
        return 2
    try:
        for line in query(load_config(), argv[0], argv[1] if len(argv) > 1 else ""):
            print(line)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
