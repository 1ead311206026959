"""The module against an API server that refuses connections, shows an untrusted certificate, or answers past
api_timeout, for both ways of giving the token.

These runs mostly wait on retries and timeouts, so they start together when the session starts and go on in the
background while other tests run; test_connection.py then checks each one.
"""
from __future__ import annotations

import dataclasses
import pathlib
import socket
import subprocess
import time

from harness.emulator import Emulator
from hosts import DELIVERIES, MEASURED_SECONDS, connection
from playbooks import AnsibleRunner, PlaybookRun, RunningPlaybook, module_task

# The module's own bound at the default num_retries and api_timeout.
FAIL_WITHIN_SECONDS = 60
DEFAULT_API_TIMEOUT = 20
# Longer than api_timeout, so every attempt times out.
SLOW_ANSWER_SECONDS = DEFAULT_API_TIMEOUT + 5


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    expected: tuple[str, ...]


SCENARIOS = (
    Scenario("refused", ("cannot connect to the API server", "Connection refused", "gave up after",
                         "check api_host / ARVADOS_API_HOST and that the server is running")),
    Scenario("untrusted certificate", ("TLS certificate", "is not trusted", "set api_insecure: true", "install the cluster's CA certificate")),
    Scenario("slow", ("did not answer within api_timeout (20 s)", "gave up after", "raise api_timeout")),
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ConnectionScenarios:
    """Every scenario for every delivery, started at once against an emulator that answers everything too late."""

    def __init__(self, collections_path: pathlib.Path, work_dir: pathlib.Path) -> None:
        self.emulator = Emulator(work_dir / "slow-emulator")
        self.runner = AnsibleRunner(collections_path, work_dir / "host")
        self.token = ""
        self._started: dict[tuple[str, str], RunningPlaybook] = {}
        self._runs: dict[tuple[str, str], PlaybookRun | None] | None = None

    def start(self) -> ConnectionScenarios:
        self.emulator.start()
        self.token = self.emulator.mint_token("alice", None)
        self.emulator.set_latency("*", "/*", SLOW_ANSWER_SECONDS, service="api")
        hosts = {"refused": (f"127.0.0.1:{closed_port()}", True), "untrusted certificate": (self.emulator.api_host, False),
                 "slow": (self.emulator.api_host, True)}
        for scenario in SCENARIOS:
            for delivery in DELIVERIES:
                api_host, insecure = hosts[scenario.name]
                args, env = connection(delivery, api_host, self.token, insecure=insecure)
                self._started[scenario.name, delivery] = self.runner.start([module_task({"name": "faults/never:1.0", **args})], env=env)
        return self

    def runs(self) -> dict[tuple[str, str], PlaybookRun | None]:
        """Each run, or None for one still going after the bound (it is then stopped)."""
        if self._runs is None:
            self._runs = {key: finished_by(running) for key, running in self._started.items()}
            for (name, delivery), run in self._runs.items():
                if run is not None:
                    MEASURED_SECONDS[f"{name}, token as {delivery}"] = run.elapsed
        return self._runs

    def stop(self) -> None:
        self.runs()
        self.runner.close()
        self.emulator.stop()


def finished_by(running: RunningPlaybook) -> PlaybookRun | None:
    try:
        return running.wait(timeout=max(1.0, running.started + FAIL_WITHIN_SECONDS - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None
