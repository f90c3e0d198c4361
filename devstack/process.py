"""Lifecycle plumbing shared by the Kafka and Redis launchers.

Both servers are ordinary child processes whose output goes to a log file in their data
directory. The fault tests need the brutal paths (SIGKILL, SIGSTOP) as much as the clean
one, so all of them live here once instead of being re-done per server.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

_PR_SET_PDEATHSIG = 1
_POLL_INTERVAL = 0.05

try:
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the children simply do not follow us out
    _prctl = None


class ProcessStartError(RuntimeError):
    """A server exited or never became ready; the message carries the end of its log."""


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Build a pre-exec hook so the server gets SIGTERM when this Python process dies.

    Without it a crashed or SIGKILLed pytest leaves brokers holding ports and data dirs
    until someone hunts them down. SIGTERM (not KILL) lets Redis flush its AOF on the way.
    The kernel ties this to the *thread* that forked, so start servers from the main thread
    or another long-lived one (not a short-lived worker thread).
    """

    def hook() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # parent already died between fork and prctl
            os._exit(1)

    return hook


class ManagedProcess:
    """One server child process writing to ``data_dir/<log_name>``.

    Subclasses provide :meth:`_prepare` (config files, storage format), :meth:`_command`
    and :meth:`_probe` (a real readiness check). The port numbers are fixed when the object
    is created, so addresses stay valid across :meth:`restart` and a client can reconnect.
    """

    name = "server"

    def __init__(self, data_dir: Path, log_name: str, *, die_with_parent: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.log_path = self.data_dir / log_name
        self._die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0

    # -- subclass hooks -------------------------------------------------------------
    def _prepare(self) -> None:
        """Create whatever the server needs on disk before launch."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _probe(self) -> bool:
        """Return True once the server really serves requests."""
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """PID of the running child, or None when it is not running."""
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        """True while the child process exists (a SIGSTOPped one counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch the server without waiting for it; pair with :meth:`wait_ready`.

        Split in two so a caller can start Kafka and Redis side by side and then wait for
        both, which overlaps the slow JVM start with everything else.
        """
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._prepare()
        self._log_file = self.log_path.open("ab")
        banner = f"==== devstack: starting {self.name} at {time.ctime()} ====\n"
        self._log_file.write(banner.encode())
        self._log_file.flush()
        self._log_offset = self._log_file.tell()
        self._proc = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,  # Ctrl-C reaches us, and we stop the servers in order
            preexec_fn=_die_with_parent(os.getpid()) if self._die_with_parent else None,
        )

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Block until :meth:`_probe` succeeds; return the seconds waited.

        Fails fast with the log tail if the process exits (bad config, port race) rather
        than sitting out the whole timeout.
        """
        begin = time.monotonic()
        deadline = begin + timeout
        while True:
            if self._proc is None:
                raise RuntimeError(f"{self.name} was never started")
            code = self._proc.poll()
            if code is not None:
                raise ProcessStartError(
                    f"{self.name} exited with code {code} before becoming ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._probe():
                return time.monotonic() - begin
            if time.monotonic() >= deadline:
                raise ProcessStartError(
                    f"{self.name} not ready after {timeout:.0f}s; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop cleanly with SIGTERM, escalating to SIGKILL after ``timeout`` seconds."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the server and reap it: simulates a crash for fault tests."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal(signal.SIGKILL)
            self._proc.wait()
        self._close_log()

    def restart(self, timeout: float = 60.0) -> float:
        """Stop (no-op if already dead or killed), start again and wait until ready."""
        self.stop()
        self.start()
        return self.wait_ready(timeout)

    def log_tail(self, lines: int = 40) -> str:
        """Last ``lines`` lines of the log file, for error messages."""
        try:
            data = self.log_path.read_bytes()[-64_000:]
        except OSError:
            return "(no log)"
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def log_since_start(self) -> str:
        """Everything the current run has logged (earlier runs append to the same file)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
