"""deploy/systemd/roomserver.service and deploy/roomserver.toml: they name what really exists and load."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from roomserver import config
from tests.conftest import ROOT

UNIT = ROOT / "deploy" / "systemd" / "roomserver.service"
TOML = ROOT / "deploy" / "roomserver.toml"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_runs_the_checked_settings_as_an_unprivileged_user() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["ExecStart"].endswith("-m roomserver serve")
    assert service["ExecStartPre"].endswith("-m roomserver check-config")
    assert service["Environment"] == f"{config.ENV_PREFIX}CONFIG=/etc/roomserver/roomserver.toml"
    assert service["User"] == "roomserver" and service["KillSignal"] == "SIGTERM"
    assert service["StateDirectory"] == "roomserver" and service["UMask"] == "0077"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    settings = config.load(TOML, env={"ROOMSERVER_ICE_TURN_SECRET": "x" * 24})
    assert settings.server.data_dir == "/var/lib/" + service["StateDirectory"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(UNIT)], capture_output=True, text=True,
                            timeout=60)
    problems = [line for line in result.stderr.splitlines() if "roomserver.service" in line
                and "Command /opt/roomserver" not in line and "not executable" not in line]
    assert not problems, result.stderr


def test_production_settings_load_and_check_config_says_how_people_reach_it(tmp_path: Path) -> None:
    settings = config.load(TOML, env={"ROOMSERVER_ICE_TURN_SECRET": "x" * 24})
    assert settings.base_url == "https://rooms.example.org"
    assert settings.server.trusted_proxies == ["127.0.0.1"] and settings.server.host == "127.0.0.1"
    assert settings.auth.cookie_secure == "always"
    env = {"ROOMSERVER_CONFIG": str(TOML), "ROOMSERVER_ICE_TURN_SECRET": "x" * 24,
           "ROOMSERVER_SERVER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "roomserver", "check-config"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HTTPS: terminated by a proxy in front" in out.stdout
    assert "trusted proxies: 127.0.0.1" in out.stdout
    assert "request head/idle 15 s, body 15 s, at most 256 per client" in out.stdout
