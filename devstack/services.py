"""The Handoff services as real child processes: for `make run` and the integration tests."""

from __future__ import annotations

import signal
import sys
import urllib.request
from pathlib import Path

from devstack.ports import free_port
from devstack.process import ManagedProcess

PORT_SETTING = {
    "services.router": "HANDOFF_ROUTER_HTTP_PORT",
    "services.handoff": "HANDOFF_HANDOFF_HTTP_PORT",
    "services.timeout": "HANDOFF_TIMEOUT_HTTP_PORT",
    "services.agent": "HANDOFF_AGENT_HTTP_PORT",
    "services.webchat": "HANDOFF_WEBCHAT_HTTP_PORT",
}


class ServiceProcess(ManagedProcess):
    """`python -m <module>` with the given HANDOFF_* settings; ready when /readyz says so."""

    def __init__(
        self,
        module: str,
        env: dict[str, str],
        data_dir: Path,
        instance: str,
        http_port: int | None = None,
    ) -> None:
        super().__init__(data_dir, f"{module.rsplit('.', 1)[-1]}-{instance}.log")
        self.name = f"{module}[{instance}]"
        self.module = module
        self.http_port = http_port or free_port()
        self.env = {
            **env,
            PORT_SETTING[module]: str(self.http_port),
            "HANDOFF_INSTANCE_ID": instance,
        }

    def pause(self) -> None:
        """SIGSTOP: frozen as by a long GC pause or a suspended VM; its sockets stay open."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`: it carries on from where it stopped."""
        self._signal(signal.SIGCONT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _command(self) -> list[str]:
        # `env` execs the interpreter, so the child's pid is the service's own (SIGKILL hits it).
        return [
            "env",
            *(f"{k}={v}" for k, v in self.env.items()),
            sys.executable,
            "-m",
            self.module,
        ]

    def _probe(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False
