"""An API server that refuses connections, shows an untrusted certificate, or answers past api_timeout: at the
default settings the module fails within 60 s with an error that names the cause and the fix.

The scenarios wait on their retries, so all of them run at once, for both ways of giving the token; each test then
checks its own run. The 60 s bound is a correctness requirement of the module, not a speed target.
"""
from __future__ import annotations

import dataclasses
import socket
import subprocess
import time
import typing as t

import pytest

from hosts import DELIVERIES, MEASURED_SECONDS, assert_no_secret, connection
from harness.emulator import Emulator
from playbooks import AnsibleRunner, PlaybookRun, module_task

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


@pytest.fixture(scope="module")
def connection_runs(tmp_path_factory, collections_path) -> t.Iterator[dict[tuple[str, str], tuple[PlaybookRun | None, str]]]:
    """Start every scenario for every delivery at once against a slow emulator, and collect the runs."""
    emulator = Emulator(tmp_path_factory.mktemp("slow-emulator")).start()
    runner = AnsibleRunner(collections_path, tmp_path_factory.mktemp("connection-host"))
    try:
        token = emulator.mint_token("alice", None)
        emulator.set_latency("*", "/*", SLOW_ANSWER_SECONDS, service="api")
        hosts = {"refused": (f"127.0.0.1:{closed_port()}", True), "untrusted certificate": (emulator.api_host, False),
                 "slow": (emulator.api_host, True)}
        started = {}
        for scenario in SCENARIOS:
            for delivery in DELIVERIES:
                api_host, insecure = hosts[scenario.name]
                args, env = connection(delivery, api_host, token, insecure=insecure)
                started[scenario.name, delivery] = (runner.start([module_task({"name": "faults/never:1.0", **args})], env=env), token)
        # The bound itself: a run still going after it is stopped, and its test fails.
        deadline = time.monotonic() + FAIL_WITHIN_SECONDS
        runs = {key: (finished_by(running, deadline), token) for key, (running, token) in started.items()}
        record_elapsed(runs)
        yield runs
    finally:
        runner.close()
        emulator.stop()


def finished_by(running, deadline: float) -> PlaybookRun | None:
    try:
        return running.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None


def record_elapsed(runs: dict[tuple[str, str], tuple[PlaybookRun | None, str]]) -> None:
    """Keep the measured times for the summary at the end of the session."""
    for (name, delivery), (run, _token) in runs.items():
        if run is not None:
            MEASURED_SECONDS[f"{name}, token as {delivery}"] = run.elapsed


@pytest.mark.timeout(2 * FAIL_WITHIN_SECONDS)
@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name.replace(" ", "-"))
def test_fails_clearly_within_a_minute(connection_runs, scenario: Scenario, delivery: str) -> None:
    run, token = connection_runs[scenario.name, delivery]
    assert run is not None, f"{scenario.name}: the module was still running after {FAIL_WITHIN_SECONDS} s"
    assert run.failed, run.describe()
    for words in scenario.expected:
        assert words in run.msg, f"{words!r} not in {run.msg!r}"
    assert_no_secret(run, (token, token.rsplit("/", 1)[-1]))
