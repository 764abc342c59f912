from dataclasses import replace
from pathlib import Path

import pytest

from matrix.config import (
    CONFIG_ENV,
    default_config,
    find_config,
    load_config,
    main,
    query,
)
from matrix.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
[[images]]
refs = ["example.org/team/app"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pull-matrix.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_says_what_the_defaults_say() -> None:
    shipped = load_config(ROOT / "pull-matrix.toml")
    defaults = default_config()

    assert shipped.data_dir == ROOT / "data"
    assert replace(shipped, source=None, data_dir=Path("data")) == defaults
    assert [image.refs for image in shipped.images] == [
        ("docker.io/kivy/buildozer", "ghcr.io/kivy/buildozer")
    ]
    assert shipped.images[0].platforms == ("linux/amd64", "linux/arm64")
    assert shipped.engines.provisioner == "dind"
    assert {"20.10", "23.0", "24.0", "25.0", "26.1", "27", "28", "29"} <= set(
        shipped.engines.versions
    )
    assert shipped.budgets() == {"docker.io": 100}


def test_lab_variant_points_at_the_loopback_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    lab = load_config(lab=True)

    assert lab.images[0].registries == ("127.0.0.1:5101", "127.0.0.1:5102")
    assert lab.registry("127.0.0.1:5101").role == "docker.io"
    assert lab.registry("127.0.0.1:5102").role == "ghcr.io"
    assert all(lab.registry(name).insecure for name in lab.images[0].registries)
    assert lab.engines.provisioner == "lab"
    assert lab.budgets() == {"127.0.0.1:5101": 100}


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))

    image = config.images[0]
    assert image.name == "example.org/team/app"
    assert image.platforms == ("linux/amd64", "linux/arm64")
    assert image.tags == ()
    assert image.priority_tags == ("latest", "stable")
    assert config.engines.versions == default_config().engines.versions
    assert config.data_dir == tmp_path / "data"
    assert config.registry("example.org").budget is None
    assert config.budgets() == {}


def test_without_a_file_the_builtin_defaults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert find_config() is None
    assert load_config() == default_config()


def test_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, MINIMAL)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_config().images[0].refs == ("example.org/team/app",)


def test_credentials_come_from_the_named_variables_only() -> None:
    hub = default_config().registry("docker.io")
    assert hub.credentials({}) is None
    assert hub.credentials({"PULL_MATRIX_USERNAME_DOCKER_IO": "someone"}) is None
    environ = {
        "PULL_MATRIX_USERNAME_DOCKER_IO": "someone",
        "PULL_MATRIX_PASSWORD_DOCKER_IO": "s3cret-value",
    }
    assert hub.credentials(environ) == ("someone", "s3cret-value")
    assert "s3cret-value" not in repr(default_config())


def test_runbook_url_joins_site_and_page(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, 'site_url = "https://x.test/m"\n' + MINIMAL))
    assert config.runbook_url("not-an-image") == "https://x.test/m/runbook/#not-an-image"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[[images]\n", "not valid TOML"),
        ("", "at least one image"),
        ("imagse = []\n" + MINIMAL, "unknown key 'imagse'"),
        ('[[images]]\nrefs = ["Not A Repo!"]\n', "refs"),
        ('[[images]]\nrefs = "docker.io/a/b"\n', "list of strings"),
        (MINIMAL + 'platforms = ["amd64"]\n', "OS/ARCH"),
        (MINIMAL + 'tags = ["-bad"]\n', "not a valid tag"),
        (MINIMAL + '[engines]\nprovisioner = "vm"\n', "provisioner must be one of"),
        (MINIMAL + '[engines]\nversions = ["latest"]\n', "not like 27"),
        (MINIMAL + "[engines]\nversions = []\n", "at least one engine"),
        (MINIMAL + '[engines]\nprovisioner = "host"\n', "needs `endpoint`"),
        (MINIMAL + '[registries."docker.io"]\nbudget = -1\n', "whole number"),
        (MINIMAL + '[registries."docker.io"]\nbudget = "100"\n', "whole number"),
        (
            MINIMAL + '[registries."docker.io"]\npassword_env = "ghp_abc def"\n',
            "not a variable name",
        ),
        (MINIMAL + '[registries."docker.io"]\nrate = 3\n', "unknown key 'rate'"),
        ('site_url = "ftp://x"\n' + MINIMAL, "http(s) URL"),
        (MINIMAL + '[alerts]\nrunbook_page = "{nope}"\n', "placeholder"),
        (MINIMAL + MINIMAL, "unique"),
    ],
)
def test_bad_config_is_a_config_error_naming_the_problem(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert complaint in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nowhere.toml")


def test_queries_for_scripts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = load_config(ROOT / "pull-matrix.lab.toml")
    assert query(lab, "insecure") == ["127.0.0.1:5101", "127.0.0.1:5102"]
    assert query(lab, "platforms", "kivy/buildozer") == ["linux/amd64", "linux/arm64"]
    assert query(default_config(), "insecure") == []

    monkeypatch.setenv(CONFIG_ENV, str(ROOT / "pull-matrix.toml"))
    assert main(["refs", "kivy/buildozer"]) == 0
    assert capsys.readouterr().out.split() == ["docker.io/kivy/buildozer", "ghcr.io/kivy/buildozer"]
    assert main(["refs", "nope/nope"]) == 1
    assert "no image named 'nope/nope'" in capsys.readouterr().err
    assert main(["colour"]) == 1
