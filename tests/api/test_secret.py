"""The per-install JWT secret and the dev token command (no servers needed)."""

from __future__ import annotations

import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from services.handoff.api.auth import JwtVerifier
from services.handoff.api.secret import SecretError, load_or_create, resolve_secret

ROOT = Path(__file__).resolve().parents[2]


def test_generated_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "handoff" / "jwt-secret"
    first = load_or_create(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path) == first
    assert resolve_secret(None, path) == first


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: load_or_create(path), range(16)))
    assert len(secrets) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["jwt-secret"]  # no temporary files left


def test_the_configured_secret_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    assert resolve_secret("k" * 40, tmp_path / "unused") == "k" * 40
    assert not (tmp_path / "unused").exists()
    with pytest.raises(SecretError):
        resolve_secret("short", None)


def test_make_token_prints_only_a_token_signed_with_the_install_secret(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "services.handoff.api.token", "--tenant", "acme"]
    done = subprocess.run(
        [*args, "--role", "viewer", "--sub", "vic"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert "\n" not in token and "generated" in done.stderr
    secret = (tmp_path / ".config" / "handoff" / "jwt-secret").read_text().strip()
    operator = JwtVerifier(secret).verify(token)
    assert (operator.tenant, operator.role, operator.sub) == ("acme", "viewer", "vic")
    assert jwt.decode(token, secret, algorithms=["HS256"])["jti"]
    again = subprocess.run([*args], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stderr == ""  # the same secret, reused
    bad = subprocess.run([*args[:-1], "no tenant!"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
