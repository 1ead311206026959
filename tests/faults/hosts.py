"""A managed host that runs the module against one cluster with a distinctive token, and checks every run for it."""
from __future__ import annotations

import concurrent.futures
import typing as t

from harness.emulator import Emulator
from playbooks import AnsibleRunner, PlaybookRun, RunningPlaybook, module_task

# How the token reaches the module: as the api_token option, or through the controller's ARVADOS_API_TOKEN.
DELIVERIES = ("option", "env")
# Times worth reporting (how long a run took to fail), printed at the end of the session.
MEASURED_SECONDS: dict[str, float] = {}


class Host:
    """Runs the module on one host against one emulator with one distinctive token, checking every run for it."""

    def __init__(self, runner: AnsibleRunner, emulator: Emulator, docker_host: str, delivery: str, token: str) -> None:
        self.runner = runner
        self.emulator = emulator
        self.docker_host = docker_host
        self.delivery = delivery
        self.token = token

    @property
    def secrets(self) -> tuple[str, str]:
        return self.token, self.token.rsplit("/", 1)[-1]

    def connection_args(self) -> dict[str, t.Any]:
        return connection(self.delivery, self.emulator.api_host, self.token)[0]

    def env(self) -> dict[str, str]:
        return connection(self.delivery, self.emulator.api_host, self.token)[1]

    def args(self, args: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """Module arguments with the connection added; given connection options win (bad-input cases set them)."""
        merged = {"docker_host": self.docker_host, **self.connection_args()}
        merged.update(args)
        return merged

    def module(self, args: t.Mapping[str, t.Any], env: t.Mapping[str, str] | None = None, **options: t.Any) -> PlaybookRun:
        return self.checked(self.runner.module(self.args(args), env={**self.env(), **(env or {})}, **options))

    def start(self, args: t.Mapping[str, t.Any], **options: t.Any) -> RunningPlaybook:
        return self.runner.start([module_task(self.args(args))], env=self.env(), **options)

    def finish(self, running: RunningPlaybook) -> PlaybookRun:
        return self.checked(running.wait())

    def checked(self, run: PlaybookRun) -> PlaybookRun:
        assert_no_secret(run, self.secrets)
        return run


def connection(delivery: str, api_host: str, token: str, insecure: bool = True) -> tuple[dict[str, t.Any], dict[str, str]]:
    """Module arguments and environment that give the module this connection, as options or as the controller's variables."""
    if delivery == "option":
        return {"api_host": api_host, "api_token": token, "api_insecure": insecure}, {}
    env = {"ARVADOS_API_HOST": api_host, "ARVADOS_API_TOKEN": token}
    if insecure:
        env["ARVADOS_API_HOST_INSECURE"] = "1"
    return {}, env


def assert_no_secret(run: PlaybookRun, secrets: t.Iterable[str]) -> None:
    text = run.everything()
    for secret in secrets:
        assert secret not in text, f"a secret appeared in the output or results of a run:\n{run.describe()}"


def new_project(emulator: Emulator, name: str, user: str = "alice") -> str:
    body = {"group": {"name": name, "group_class": "project"}}
    return emulator.api(user).groups().create(body=body, ensure_unique_name=True).execute()["uuid"]


def on_each_host(hosts: t.Sequence[Host], scenario: t.Callable[[Host], None]) -> None:
    """Run one scenario on each host at once (such scenarios mostly wait on retries); failures name the delivery."""
    with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
        futures = {host.delivery: pool.submit(scenario, host) for host in hosts}
    failures = []
    for delivery, future in futures.items():
        try:
            future.result()
        except AssertionError as exc:
            failures.append(f"token as {delivery}: {exc}")
    assert not failures, "\n".join(failures)
