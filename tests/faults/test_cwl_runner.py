"""Interoperation with arvados-cwl-runner: for a DockerRequirement naming an image that the module stored (copied from
another cluster, or read from a registry with no daemon), the runner's own resolution (`arvados_cwl.arvdocker`, run
from the venv that holds arvados-cwl-runner) finds the project's collection and uploads nothing.

The runner splits `dockerPull` at its first colon, so a registry named with a port cannot be resolved by it at all;
the registry here listens on 443 and is named without one.
"""
from __future__ import annotations

import json
import os
import subprocess
import typing as t

import pytest

from cluster import ClusterView
from harness.registries import PASSWORD, USERNAME, SecureRegistry
from playbooks import REPO_ROOT
# `fleet` is test_clusters' fixture, imported so that pytest finds it here.
from test_clusters import Fleet, fleet, stored_on_a  # noqa: F401  pylint: disable=unused-import

NO_DAEMON = "unix:///nonexistent/docker.sock"
CWL_PYTHON = os.environ.get("CWL_PYTHON", str(REPO_ROOT / "build" / "venv-cwl" / "bin" / "python"))
MIB = 1024 * 1024


@pytest.fixture()
def delivery() -> str:
    return "option"


def cwl_runner_resolves(emulator: t.Any, token: str, docker_pull: str, project_uuid: str) -> subprocess.CompletedProcess:
    assert os.path.exists(CWL_PYTHON), f"{CWL_PYTHON} is missing: `make faults` makes the venv with arvados-cwl-runner"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "DOCKER_HOST": NO_DAEMON,
           "ARVADOS_API_HOST": emulator.api_host, "ARVADOS_API_TOKEN": token, "ARVADOS_API_HOST_INSECURE": "1"}
    return subprocess.run([CWL_PYTHON, str(REPO_ROOT / "tests" / "harness" / "cwl_resolve.py"), "--docker-pull", docker_pull,
                           "--project-uuid", project_uuid], env=env, capture_output=True, text=True, timeout=300, check=False)


def resolved_pdh(outcome: subprocess.CompletedProcess) -> str:
    assert outcome.returncode == 0, f"arvados-cwl-runner's resolution failed:\n{outcome.stdout}\n{outcome.stderr}"
    return json.loads(outcome.stdout)["portable_data_hash"]


def writes(emulator: t.Any) -> list[str]:
    """Every request that could have stored something: Keep PUTs and API creates or updates."""
    return [f"{entry['service']} {entry['method']} {entry['path']}" for entry in emulator.request_log()["entries"]
            if entry["method"] in ("PUT", "POST", "PATCH") and not entry["path"].startswith("/_emulator")]


def test_the_runner_finds_a_copy_from_another_cluster(fleet: Fleet, build_image) -> None:
    image = stored_on_a(fleet, build_image(size=MIB))
    copied = fleet.copy(image, "bbbbb")
    assert copied.rc == 0 and copied.result["changed"], copied.describe()
    destination = fleet.emulators["bbbbb"]
    destination.reset_request_log()

    found = cwl_runner_resolves(destination, fleet.tokens["bbbbb"], image.repo_tag, fleet.projects["bbbbb"])
    assert resolved_pdh(found) == image.portable_data_hash == copied.result["portable_data_hash"]
    assert writes(destination) == []

    # Where the image was not copied, the runner goes to pull it for an upload, and with no daemon it cannot.
    missing = cwl_runner_resolves(fleet.emulators["ccccc"], fleet.tokens["ccccc"], image.repo_tag, fleet.projects["ccccc"])
    assert missing.returncode != 0 and "'docker', 'pull'" in missing.stderr, missing.stderr
    assert writes(fleet.emulators["ccccc"]) == []


def test_the_runner_finds_an_image_read_from_a_registry(host, images, dockerd, project, emulator, alice_token, tmp_path) -> None:
    registry = SecureRegistry(tmp_path / "registry").start(port=443)
    try:
        built = images.build("faults/cwl-registry", "1.0", size=200_000)
        registry.push(dockerd, built.ref)
        name = f"127.0.0.1/{built.ref}"
        stored = host.module({"name": name, "source": "registry", "project_uuid": project, "docker_host": NO_DAEMON,
                              "registry_username": USERNAME, "registry_password": PASSWORD,
                              "registry_ca_path": str(registry.ca_path)}, env={"DOCKER_HOST": NO_DAEMON})
        assert stored.rc == 0 and stored.result["changed"] and stored.result["image_id"] == built.image_id, stored.describe()
    finally:
        registry.stop()
    emulator.reset_request_log()

    found = cwl_runner_resolves(emulator, alice_token, name, project)
    assert resolved_pdh(found) == stored.result["portable_data_hash"]
    assert writes(emulator) == []
    assert ClusterView(emulator.api("admin")).image_links(project), "the module made the image's links"
