"""The deployment files name real components and settings: ``deploy/compose.yaml`` (Docker
does not run on this machine, so its structure is checked, not run), the systemd units
(checked with ``systemd-analyze verify`` when it is installed), the environment file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from infrastructure.components import COMPONENTS, ComponentName, missing, selected
from infrastructure.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
SINKS = {ComponentName.TELEGRAM, ComponentName.EMAIL}
NOT_SETTINGS = {"TRADEWATCH_DASHBOARD_PASSWORD", "TRADEWATCH_DASHBOARD_USERS"}
"""Read by the dashboard from the environment itself (``ui/dashboard/server.py``)."""


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section → key → every value given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), defaultdict(list))
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current[key.strip()].append(value.strip())
    return sections


def seconds(text: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m)?", str(text))
    assert found is not None, text
    return float(found[1]) * (60 if found[2] == "m" else 1)


def test_compose_runs_every_component_once_by_its_name() -> None:
    services = compose()["services"]
    ours = {n: s for n, s in services.items() if s.get("command", [""])[0] == "tradewatch"}
    assert {n: s["command"] for n, s in ours.items()} == {
        name.value: ["tradewatch", "run", name.value] for name in ComponentName
    }
    for name, service in ours.items():
        assert service["image"] == ours["relay"]["image"], name
        assert seconds(service["stop_grace_period"]) >= 10, name
        assert service["stop_signal"] == "SIGTERM", name
        assert service["env_file"] == "tradewatch.env", name
        env = service["environment"]
        assert env["TRADEWATCH_NATS_URL"] == "nats://nats:4222", name
        assert env["TRADEWATCH_DATABASE_URL"].startswith("postgresql://"), name
        assert "@postgres:5432/" in env["TRADEWATCH_DATABASE_URL"], name
    assert {n for n, s in ours.items() if "profiles" in s} == {s.value for s in SINKS}


def test_compose_has_postgresql_and_nats_with_jetstream() -> None:
    document = compose()
    services = document["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert "healthcheck" in services["postgres"]
    nats = services["nats"]
    assert nats["image"].startswith("nats:")
    assert "-js" in nats["command"] and "-sd" in nats["command"]
    assert "healthcheck" in nats
    declared = set(document["volumes"])
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, (name, target)
        for volume in service.get("volumes", []):
            assert volume.split(":", 1)[0] in declared, (name, volume)
    dashboard = services["dashboard"]
    assert dashboard["environment"]["TRADEWATCH_DASHBOARD_HOST"] == "0.0.0.0"
    assert dashboard["ports"] == ["127.0.0.1:5006:5006"]


def test_the_image_holds_every_package_and_the_env_file_has_an_example() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
        assert f"!{package}/" in (DEPLOY / "Dockerfile.dockerignore").read_text(), package
    build = compose()["x-tradewatch"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert (DEPLOY / "tradewatch.env.example").is_file()


def test_a_systemd_unit_per_component_in_one_target() -> None:
    files = {p.name for p in UNITS.glob("*.service")}
    assert files == {f"tradewatch-{name.value}.service" for name in ComponentName}
    for name in ComponentName:
        path = UNITS / f"tradewatch-{name.value}.service"
        sections = unit(path)
        service = sections["Service"]
        (start,) = service["ExecStart"]
        assert start.split()[1:] == ["run", name.value], path.name
        assert start.split()[0].endswith("/bin/tradewatch"), path.name
        assert service["KillSignal"] == ["SIGTERM"]
        assert seconds(service["TimeoutStopSec"][0]) >= 10
        assert service["EnvironmentFile"] == ["/etc/tradewatch/tradewatch.env"]
        assert service["Restart"] == ["always"]
        assert sections["Unit"]["PartOf"] == ["tradewatch.target"]
        assert sections["Install"]["WantedBy"] == ["tradewatch.target"]
        assert COMPONENTS[name].summary in sections["Unit"]["Description"][0]
    target = unit(UNITS / "tradewatch.target")
    wanted = {u for line in target["Unit"]["Wants"] for u in line.split()}
    assert wanted == {f"tradewatch-{n.value}.service" for n in ComponentName if n not in SINKS}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    tradewatch = Path(sys.executable).with_name("tradewatch")
    for path in [*UNITS.glob("*.service"), UNITS / "tradewatch.target"]:
        text = path.read_text().replace("/opt/tradewatch/.venv/bin/tradewatch", str(tradewatch))
        (tmp_path / path.name).write_text(text)
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == "" and checked.stdout.strip() == ""


def setting_names() -> set[str]:
    names = set(NOT_SETTINGS)
    for name, info in Settings.model_fields.items():
        names.add(f"TRADEWATCH_{name.upper()}")
        if isinstance(info.validation_alias, AliasChoices):
            names |= {str(a).upper() for a in info.validation_alias.choices}
    return names


def example() -> dict[str, str]:
    """Every ``NAME=value`` of the example, commented out or not."""
    values = {}
    for line in (DEPLOY / "tradewatch.env.example").read_text().splitlines():
        found = re.fullmatch(r"#?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if found:
            values[found[1]] = found[2]
    return values


def test_the_environment_example_names_real_settings_that_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = example()
    assert set(values) - setting_names() == set()
    documented = (ROOT / "docs" / "deploy.md").read_text()
    for name in values:
        assert name in documented, f"{name} is not in docs/deploy.md"
    monkeypatch.chdir(tmp_path)  # no tradewatch.toml
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.telegram_chat_id == "-1001234567890"
    assert settings.smtp_to == ("you@example.com", "desk@example.com")
    assert settings.dashboard_allow_origins == ("https://dash.example.com",)
    assert selected(settings) == list(ComponentName)


def test_up_runs_the_components_whose_settings_are_complete(tmp_path: Path) -> None:
    core = [n for n in ComponentName if n not in (*SINKS, ComponentName.RELAY)]
    assert selected(Settings(home=tmp_path)) == core
    with_nats = Settings(home=tmp_path, nats_url="nats://127.0.0.1:4222")
    assert selected(with_nats) == [*core[:5], ComponentName.RELAY, core[5]]
    assert missing(ComponentName.TELEGRAM, with_nats) == [
        "TRADEWATCH_TELEGRAM_BOT_TOKEN",
        "TRADEWATCH_TELEGRAM_CHAT_ID",
    ]
    assert missing(ComponentName.EMAIL, Settings(home=tmp_path, smtp_host="smtp.example.com")) == [
        "TRADEWATCH_NATS_URL",
        "TRADEWATCH_SMTP_FROM",
        "TRADEWATCH_SMTP_TO",
    ]
