"""Fixtures of the fault, bad-input and secrets suite: services of our own, a staged collection, and a host that
runs ansible-playbook against them with a distinctive token given as a module option or through the environment.

Every run made through a `Host` is checked for the token (whole, and its secret part) in everything it printed
or returned, so each scenario is also a secrets test.
"""
from __future__ import annotations

import pathlib
import re
import typing as t

import pytest

from cluster import ClusterView, ExpectedImage, expected_image
from connection_scenarios import ConnectionScenarios
from harness.emulator import Emulator
from harness.fixtures import clusters, dockerd, emulator, fresh_emulator, images, state_root
from hosts import DELIVERIES, MEASURED_SECONDS, Host, new_project
from playbooks import CONTROLLER, AnsibleRunner, stage_collection

# The shared service fixtures, imported so pytest finds them here.
__all__ = ["clusters", "dockerd", "emulator", "fresh_emulator", "images", "state_root"]

NOT_A_NAME = re.compile(r"[^a-z0-9]+")


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> pathlib.Path:
    """The collection as ansible-core finds it: <dir>/ansible_collections/arvados/cluster, copied once."""
    return stage_collection(tmp_path_factory.mktemp("collections"))


@pytest.fixture(scope="session", autouse=True)
def connection_scenarios(request, collections_path, tmp_path_factory) -> t.Iterator[ConnectionScenarios | None]:
    """Started first when test_connection.py is in the session, so its waiting overlaps the other tests."""
    wanted = any(item.module.__name__ == "test_connection" for item in request.session.items)
    if not wanted:
        yield None
        return
    scenarios = ConnectionScenarios(collections_path, tmp_path_factory.mktemp("connection"))
    try:
        yield scenarios.start()
    finally:
        scenarios.stop()


@pytest.fixture()
def execution() -> str:
    """Where the image module's code runs: in the controller (localhost with the controller's python, the common case).

    A test module overrides this fixture to run its tests shipped as a module, or both ways.
    """
    return CONTROLLER


@pytest.fixture()
def runner(collections_path, tmp_path, execution):
    """One managed host: runs share its HOME (and so the module's upload lock), as runs on one machine do."""
    host_runner = AnsibleRunner(collections_path, tmp_path / "host", execution)
    yield host_runner
    host_runner.close()


@pytest.fixture(params=DELIVERIES)
def delivery(request) -> str:
    """How the token reaches the module: as the api_token option, or through the controller's ARVADOS_API_TOKEN."""
    return request.param


def slug_of(request) -> str:
    """The test's name as a repository name component: lowercase words joined by '-', without the 'test_' prefix."""
    name = request.node.name.lower().removeprefix("test_")
    return NOT_A_NAME.sub("-", name)[:60].strip("-")


@pytest.fixture(scope="session")
def alice_token(emulator) -> str:
    """A token of alice's that appears nowhere but where a test puts it."""
    return emulator.mint_token("alice", None)


@pytest.fixture()
def quiet_emulator(emulator) -> t.Iterator[Emulator]:
    """The session's emulator with no fault, latency or logged request left from an earlier test, and none left after."""
    emulator.clear_faults()
    emulator.reset_request_log()
    yield emulator
    emulator.clear_faults()


@pytest.fixture()
def host(runner, quiet_emulator, dockerd, delivery, alice_token) -> Host:
    return Host(runner, quiet_emulator, dockerd.docker_host, delivery, alice_token)


@pytest.fixture()
def parallel_hosts(collections_path, tmp_path, dockerd, execution) -> t.Iterator[list[Host]]:
    """A host per delivery, each with an emulator of its own, for scenarios that run on both at once."""
    hosts, emulators, runners = [], [], []
    try:
        for delivery in DELIVERIES:
            emulators.append(Emulator(tmp_path / f"emulator-{delivery}").start())
            runners.append(AnsibleRunner(collections_path, tmp_path / f"host-{delivery}", execution))
            hosts.append(Host(runners[-1], emulators[-1], dockerd.docker_host, delivery, emulators[-1].mint_token("alice", None)))
        yield hosts
    finally:
        for runner_of_host in runners:
            runner_of_host.close()
        for emulator_of_host in emulators:
            emulator_of_host.stop()


@pytest.fixture()
def fresh_host(runner, fresh_emulator, dockerd, delivery) -> Host:
    """A host talking to an emulator of the test's own, for a test that restarts it."""
    return Host(runner, fresh_emulator, dockerd.docker_host, delivery, fresh_emulator.mint_token("alice", None))


@pytest.fixture()
def admin_view(emulator) -> ClusterView:
    return ClusterView(emulator.api("admin"))


@pytest.fixture()
def project(request, emulator) -> str:
    """A project of alice's for this test alone, so counts in it are the test's own."""
    return new_project(emulator, f"faults {slug_of(request)}")


@pytest.fixture()
def build_image(request, images) -> t.Callable[..., ExpectedImage]:
    """Build an image named after the test (plus a suffix) and return what its collection must be."""
    def build(suffix: str = "", size: int = 1000, tag: str = "1.0") -> ExpectedImage:
        repo = f"faults/{slug_of(request)}{'-' + suffix if suffix else ''}"
        images.build(repo, tag, size=size)
        return expected_image(images.client.api, f"{repo}:{tag}")
    return build


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASURED_SECONDS:
        terminalreporter.section("measured run times")
        for what, seconds in sorted(MEASURED_SECONDS.items()):
            terminalreporter.write_line(f"{what}: {seconds:.1f} s")
