"""`make demo` as an end-to-end test: the checklist paths (the four of the mode, the four of
the human side) pass against a running stack (an idle-timeout minute lasts 3 s here), and the
demo says so path by path."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.integration


def test_make_demo_passes_every_path(stack: Stack, tenant: str, workdir: Path) -> None:
    began = time.monotonic()
    api_port = str(stack.procs["handoff"].http_port)
    demo = subprocess.run(
        [sys.executable, "-m", "services.demo", "--tenant", tenant],
        env={**stack.env, "HANDOFF_HANDOFF_HTTP_PORT": api_port, "COLUMNS": "160", "TERM": "dumb"},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    took = time.monotonic() - began

    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out
    assert out.count("PASSED") >= 8 and "FAILED" not in out, out
    for shown in (
        "queued in billing, position 1",  # path 5
        "the other 409 already_assigned",  # path 6
        "resolved with the note",  # path 7
        "away",  # path 8: the notice says when the team is back
        "agent  request_handoff",  # path 1: the tool call, with actor and reason
        "notice ← \"You're now chatting with a human teammate",  # path 2: the notice itself
        "none to chat.ai-requests",  # path 3
        "cause timeout",  # path 4
        "cause operator",
    ):
        assert shown in out, f"{shown!r} missing from:\n{out}"
    assert took < 60, f"the demo took {took:.0f} s"


def test_demo_without_a_stack_says_how_to_start_one(workdir: Path) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "services.demo"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert demo.returncode == 2 and "make run" in demo.stdout, demo.stdout + demo.stderr
