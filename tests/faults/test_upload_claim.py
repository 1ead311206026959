"""One transfer per cluster: runs on two hosts (two HOME folders, so no shared host lock) ensuring the same image into
one project upload it once, through a claim made in the cluster; a claim left by a killed run is taken over."""
from __future__ import annotations

import contextlib
import time
import typing as t

import psutil
import pytest

from cluster import ClusterView
from hosts import Host
from playbooks import AnsibleRunner

CLAIM_PREFIX = "arvados.cluster upload claim "
# Keep PUTs held this long keep the claimant inside its upload while the other host's run arrives.
UPLOAD_HOLD_SECONDS = 6
KILLED_CLAIM_TTL = 4
# Link requests held this long keep a run between saving its collection and linking it while it is killed.
LINK_HOLD_SECONDS = 3


@pytest.fixture()
def delivery() -> str:
    return "option"


@pytest.fixture()
def other_host(collections_path, tmp_path, host: Host, execution) -> t.Iterator[Host]:
    """A second managed host: its own HOME, the same cluster, token and Docker daemon."""
    other_runner = AnsibleRunner(collections_path, tmp_path / "other-host", execution)
    yield Host(other_runner, host.emulator, host.docker_host, host.delivery, host.token)
    other_runner.close()


def requests_to(emulator, service: str, method: str, route: str, status: int | str = 200) -> list[dict[str, t.Any]]:
    return [entry for entry in emulator.request_log()["entries"]
            if (entry["service"], entry["method"], entry["route"], entry["status"]) == (service, method, route, status)]


def claims(admin: t.Any, project: str) -> list[dict[str, t.Any]]:
    filters = [["owner_uuid", "=", project], ["name", "like", f"{CLAIM_PREFIX}%"]]
    return admin.collections().list(filters=filters, include_trash=True, select=["uuid", "is_trashed", "trash_at"]).execute()["items"]


def test_two_hosts_racing_transfer_the_image_once(host: Host, other_host: Host, project: str, build_image) -> None:
    emulator = host.emulator
    image = build_image(size=2_000_000)
    emulator.set_latency("PUT", "/*", UPLOAD_HOLD_SECONDS, service="keep")
    emulator.reset_request_log()

    started = [each.start({"name": image.repo_tag, "project_uuid": project}) for each in (host, other_host)]
    runs = [each.finish(running) for each, running in zip((host, other_host), started)]

    for run in runs:
        assert run.rc == 0 and not run.failed, run.describe()
    assert sorted(run.result["changed"] for run in runs) == [False, True], [run.result for run in runs]
    claimant, waiter = sorted(runs, key=lambda run: not run.result["changed"])
    assert waiter.result["waited_for_upload"] > 0 and waiter.result["actions"] == [], waiter.describe()
    assert "waited_for_upload" not in claimant.result
    collection = ClusterView(emulator.api("admin")).assert_converged(project, image)
    assert {run.result["collection_uuid"] for run in runs} == {collection["uuid"]}
    puts = requests_to(emulator, "keep", "PUT", "/{locator}")
    assert (len(puts), sum(put["request_bytes"] for put in puts)) == (image.blocks, image.size), puts
    assert len(requests_to(emulator, "api", "POST", "/arvados/v1/collections")) == 2  # the claim, the image
    assert len(requests_to(emulator, "api", "POST", "/arvados/v1/collections", status=422)) >= 1  # the waiter's claim
    assert [claim["is_trashed"] for claim in claims(emulator.api("admin"), project)] == [True]


def kill_tree(pid: int) -> None:
    """SIGKILL a playbook and every process under it (ansible-core's task workers start sessions of their own)."""
    playbook = psutil.Process(pid)
    for process in playbook.children(recursive=True) + [playbook]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def wait_for_claim(admin: t.Any, project: str, timeout: float = 120) -> dict[str, t.Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = [claim for claim in claims(admin, project) if not claim["is_trashed"]]
        if live:
            return live[0]
        time.sleep(0.2)
    raise AssertionError(f"no claim appeared in {project} within {timeout} s")


def test_claim_of_a_killed_run_is_taken_over_once_expired(host: Host, other_host: Host, project: str, build_image) -> None:
    emulator = host.emulator
    admin = emulator.api("admin")
    image = build_image(size=500_000)
    emulator.set_latency("PUT", "/*", 120, service="keep")
    killed = host.start({"name": image.repo_tag, "project_uuid": project, "claim_ttl": KILLED_CLAIM_TTL})
    left = wait_for_claim(admin, project)
    kill_tree(killed.process.pid)
    killed.process.wait()
    emulator.set_latency("PUT", "/*", 0, service="keep")
    emulator.reset_request_log()

    run = other_host.module({"name": image.repo_tag, "project_uuid": project})

    assert run.rc == 0 and run.result["changed"], run.describe()
    ClusterView(admin).assert_converged(project, image)
    after = {claim["uuid"]: claim for claim in claims(admin, project)}
    assert all(claim["is_trashed"] for claim in after.values()) and len(after) == 2
    # Taken over only once it had expired: trashed (trash_at set to that moment) no earlier than its expiry.
    assert after[left["uuid"]]["trash_at"] >= left["trash_at"], (left, after[left["uuid"]])
    assert len(requests_to(emulator, "api", "POST", "/arvados/v1/collections/{uuid}/trash")) == 2  # the killed claim, its own


def test_an_image_a_killed_run_saved_is_linked_without_waiting_for_its_claim(
        host: Host, other_host: Host, project: str, build_image) -> None:
    """A run killed after saving its collection, before any link, leaves its claim live (for its ttl): another host
    that finds the image claimed reads the project's unlinked uploads at once, and links the saved collection."""
    emulator = host.emulator
    admin = emulator.api("admin")
    image = build_image(size=500_000)
    emulator.set_latency("POST", "/arvados/v1/links", LINK_HOLD_SECONDS, service="api")
    emulator.reset_request_log()
    killed = host.start({"name": image.repo_tag, "project_uuid": project})
    deadline = time.monotonic() + 120
    while len(requests_to(emulator, "api", "POST", "/arvados/v1/collections")) < 2:  # the claim, the image's collection
        assert time.monotonic() < deadline and killed.process.poll() is None, "the run never saved its collection"
        time.sleep(0.1)
    emulator.inject_fault("POST", "/arvados/v1/links", status=503, service="api")  # the held link request fails
    kill_tree(killed.process.pid)
    killed.process.wait()
    time.sleep(LINK_HOLD_SECONDS + 1)
    emulator.clear_faults()
    emulator.set_latency("POST", "/arvados/v1/links", 0, service="api")
    [left] = [claim for claim in claims(admin, project) if not claim["is_trashed"]]
    emulator.reset_request_log()

    run = other_host.module({"name": image.repo_tag, "project_uuid": project})

    assert run.rc == 0 and run.result["changed"] and "waited_for_upload" not in run.result, run.describe()
    collection = ClusterView(admin).assert_converged(project, image)
    assert run.result["collection_uuid"] == collection["uuid"]
    assert requests_to(emulator, "keep", "PUT", "/{locator}") == []
    assert requests_to(emulator, "api", "POST", "/arvados/v1/collections") == []
    assert len(requests_to(emulator, "api", "POST", "/arvados/v1/links")) == 2
    assert [claim["uuid"] for claim in claims(admin, project) if not claim["is_trashed"]] == [left["uuid"]]
