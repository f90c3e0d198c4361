"""What only the dev stack turns on: the web chat's ?user= (issue 16). The code's default is
off; `make run` (devstack/system.py) turns it on, unless told otherwise, and says so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack import system
from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from devstack.services import ServiceProcess
from services.webchat.settings import WebchatSettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in list(os.environ):
        if var.startswith("HANDOFF_"):
            monkeypatch.delenv(var)
    return monkeypatch


def test_the_web_chat_never_lets_the_url_name_the_user_by_default(
    clean_env: pytest.MonkeyPatch,
) -> None:
    settings = WebchatSettings()
    assert settings.webchat_query_user is False
    assert settings.webchat_trust_proxy is False


def stack(tmp_path: Path) -> tuple[KafkaProcess, RedisProcess]:
    return KafkaProcess(tmp_path / "kafka"), RedisProcess(tmp_path / "redis")


def test_make_run_turns_it_on_and_says_so(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka, redis = stack(tmp_path)
    env = system._env(kafka, redis, tmp_path)
    assert env["HANDOFF_WEBCHAT_QUERY_USER"] == "true"

    services = [ServiceProcess(m, env, tmp_path, "x") for m in system.PORT_SETTING]
    system._print_summary(tmp_path, kafka, redis, services, [], "acme/support", env)
    assert "?user= names the end user (HANDOFF_WEBCHAT_QUERY_USER=true" in capsys.readouterr().out


def test_make_run_keeps_it_off_when_told(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("HANDOFF_WEBCHAT_QUERY_USER", "false")
    kafka, redis = stack(tmp_path)
    env = system._env(kafka, redis, tmp_path)
    assert env["HANDOFF_WEBCHAT_QUERY_USER"] == "false"

    services = [ServiceProcess(m, env, tmp_path, "x") for m in system.PORT_SETTING]
    system._print_summary(tmp_path, kafka, redis, services, [], "acme/support", env)
    assert "QUERY_USER" not in capsys.readouterr().out
