"""The module against an API server that refuses connections, shows an untrusted certificate, or answers past
api_timeout, for every way of giving the connection: options, the controller's environment, and the variables
arvados_api_*, templated.

These runs mostly wait on retries and timeouts, so they start together when the session starts and go on in the
background while other tests run; test_connection.py then checks each one.

Also the connection as variables, for the tests that check the one precedence (options, then the templated
variables, then the environment) through ansible-playbook: `variables_connection` gives each arvados_* variable as
a template of another variable, and `vaulted_variables_file` a vars file with the token vaulted.
"""
from __future__ import annotations

import dataclasses
import pathlib
import socket
import subprocess
import time
import typing as t

from ansible.parsing.vault import VaultLib, VaultSecret

from harness.emulator import Emulator
from hosts import DELIVERIES, MEASURED_SECONDS, connection
from playbooks import AnsibleRunner, PlaybookRun, RunningPlaybook, module_task

# How the connection reaches the module in these scenarios: those of hosts.py, and the variables arvados_api_*.
VARIABLES = "variables"
SCENARIO_DELIVERIES = DELIVERIES + (VARIABLES,)
VAULT_PASSWORD = "faults-vault-password"
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
            for delivery in SCENARIO_DELIVERIES:
                api_host, insecure = hosts[scenario.name]
                args, env, variables = scenario_connection(delivery, api_host, self.token, insecure)
                self._started[scenario.name, delivery] = self.runner.start([module_task({"name": "faults/never:1.0", **args})], env=env,
                                                                           variables=variables)
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


def scenario_connection(delivery: str, api_host: str, token: str, insecure: bool) -> tuple[dict[str, t.Any], dict[str, str], dict[str, t.Any]]:
    """Module arguments, environment and play variables that give the module this connection."""
    if delivery == VARIABLES:
        return {}, {}, variables_connection(api_host, token, insecure)
    args, env = connection(delivery, api_host, token, insecure=insecure)
    return args, env, {}


def variables_connection(api_host: str | None, token: str | None, insecure: bool | None = True,
                         token_variable: str = "cluster_token") -> dict[str, t.Any]:
    """Play variables that set the connection as group_vars usually do: each arvados_* variable a template of another.

    `token_variable` names the variable that holds the token; the caller defines it (in a vaulted vars file, say)
    when `token` is None. A None host or insecure flag leaves its variable out.
    """
    variables: dict[str, t.Any] = {"arvados_api_token": f"{{{{ {token_variable} }}}}"}
    if token is not None:
        variables[token_variable] = token
    if api_host is not None:
        variables.update(cluster_api_host=api_host, arvados_api_host="{{ cluster_api_host }}")
    if insecure is not None:
        variables.update(cluster_insecure=insecure, arvados_api_insecure="{{ cluster_insecure }}")
    return variables


def vaulted_variables_file(path: pathlib.Path, variables: t.Mapping[str, str]) -> dict[str, str]:
    """Write a vars file whose values are vaulted (`!vault`) with VAULT_PASSWORD; returns the environment that opens it."""
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    lines = ["---"]
    for name, value in variables.items():
        lines.append(f"{name}: !vault |")
        lines.extend(f"  {line}" for line in vault.encrypt(value).decode().splitlines())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    password_file = path.with_name(path.name + ".password")
    password_file.write_text(VAULT_PASSWORD + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    return {"ANSIBLE_VAULT_PASSWORD_FILE": str(password_file)}


def finished_by(running: RunningPlaybook) -> PlaybookRun | None:
    try:
        return running.wait(timeout=max(1.0, running.started + FAIL_WITHIN_SECONDS - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None
