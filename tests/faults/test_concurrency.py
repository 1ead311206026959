"""Runs racing on one host, and an emulator restarted between runs."""
from __future__ import annotations

import pytest

from cluster import ClusterView
from hosts import Host, new_project

# Keep PUTs held this long keep the first run inside its upload while the others arrive.
UPLOAD_HOLD_SECONDS = 2


def count(emulator, service: str, method: str, route: str) -> int:
    return sum(1 for e in emulator.request_log()["entries"]
               if e["service"] == service and e["method"] == method and e["route"] == route and e["status"] == 200)


def discovery_fetches_before_first_save(emulator) -> int:
    """How many clients had started before the first image was stored, that is, before its first link (each client
    fetches the discovery document; an upload's claim is saved before the image, so it does not count)."""
    fetched = 0
    for entry in emulator.request_log()["entries"]:
        if entry["method"] == "POST" and entry["route"] == "/arvados/v1/links":
            return fetched
        if entry["route"] == "/discovery/v1/apis/arvados/v1/rest" and entry["status"] == 200:
            fetched += 1
    return fetched


@pytest.mark.parametrize("runs", [2, 4])
def test_concurrent_runs_for_one_image_upload_it_once(host: Host, project: str, build_image, runs: int) -> None:
    emulator = host.emulator
    image = build_image()
    args = {"name": image.repo_tag, "project_uuid": project}
    emulator.set_latency("PUT", "/*", UPLOAD_HOLD_SECONDS, service="keep")
    emulator.reset_request_log()

    started = [host.start(args) for _run in range(runs)]
    results = [host.finish(running) for running in started]

    for run in results:
        assert run.rc == 0 and not run.failed, run.describe()
    assert discovery_fetches_before_first_save(emulator) >= runs, "the runs did not overlap"
    assert count(emulator, "keep", "PUT", "/{locator}") == image.blocks
    assert count(emulator, "api", "POST", "/arvados/v1/collections") == 2  # the upload's claim, the image's collection
    assert count(emulator, "api", "POST", "/arvados/v1/links") == 2
    assert [run.result["changed"] for run in results].count(True) == 1
    collection = ClusterView(emulator.api("admin")).assert_converged(project, image)
    assert {run.result["collection_uuid"] for run in results} == {collection["uuid"]}
    assert {run.result["portable_data_hash"] for run in results} == {image.portable_data_hash}


def test_two_images_in_parallel(host: Host, project: str, build_image) -> None:
    emulator = host.emulator
    first, second = build_image("first"), build_image("second")
    emulator.set_latency("PUT", "/*", UPLOAD_HOLD_SECONDS, service="keep")
    emulator.reset_request_log()

    started = [host.start({"name": image.repo_tag, "project_uuid": project}) for image in (first, second)]
    results = [host.finish(running) for running in started]

    for run in results:
        assert run.rc == 0 and run.result.get("changed"), run.describe()
    assert discovery_fetches_before_first_save(emulator) >= 2, "the runs did not overlap"
    view = ClusterView(emulator.api("admin"))
    for image, run in zip((first, second), results):
        assert run.result["collection_uuid"] == view.assert_converged(project, image)["uuid"]
    assert count(emulator, "api", "POST", "/arvados/v1/collections") == 4  # a claim and a collection for each image


@pytest.fixture()
def restart_project(fresh_emulator) -> str:
    return new_project(fresh_emulator, "restarted server")


def test_emulator_restart_between_runs(fresh_host: Host, restart_project: str, build_image) -> None:
    """Everything stored survives a restart of the server, and the second run changes nothing."""
    emulator = fresh_host.emulator
    image = build_image()
    args = {"name": image.repo_tag, "project_uuid": restart_project}
    first = fresh_host.module(args)
    assert first.rc == 0 and first.result.get("changed"), first.describe()

    emulator.restart()
    emulator.reset_request_log()
    second = fresh_host.module(args, diff=True)

    assert second.rc == 0 and not second.failed and second.result["changed"] is False, second.describe()
    assert second.result["actions"] == []
    assert second.result["collection_uuid"] == first.result["collection_uuid"]
    assert second.result["diff"]["before"] == second.result["diff"]["after"]
    writes = [e for e in emulator.request_log()["entries"] if e["method"] in ("POST", "PUT", "DELETE") and not e["method_override"]]
    assert writes == []
    ClusterView(emulator.api("admin")).assert_converged(restart_project, image)
