"""Temporary API and Keep failures during real module runs: each is retried, and nothing is lost or duplicated."""
from __future__ import annotations

import itertools
import typing as t

import pytest

from cluster import ClusterView
from hosts import Host, new_project, on_each_host
from harness.emulator import Emulator

# Every answer the module must retry: 5xx, and the 4xx the Arvados SDK treats as temporary.
RETRIED_STATUSES = (500, 502, 503, 504, 408, 409, 423, 429)
# The API calls of an upload into a project, the copy of an image readable elsewhere, an update and a removal.
UPLOAD_ROUTES = (
    ("GET", "/discovery/v1/apis/arvados/v1/rest"),
    ("GET", "/arvados/v1/links"),
    ("GET", "/arvados/v1/collections"),
    ("GET", "/arvados/v1/groups/*"),
    ("GET", "/arvados/v1/config"),
    ("POST", "/arvados/v1/collections"),
    ("POST", "/arvados/v1/links"),
)
# The Keep client asks for Keep services in a retry loop of its own, with a fixed back-off from 2 s.
KEEP_SERVICES_ROUTE = ("GET", "/arvados/v1/keep_services/accessible")
COPY_ROUTES = UPLOAD_ROUTES[:4] + (("GET", "/arvados/v1/collections/*"), ("POST", "/arvados/v1/collections"),
                                   ("POST", "/arvados/v1/links"))
UPDATE_ROUTES = UPLOAD_ROUTES[:4] + (("PUT", "/arvados/v1/collections/*"),)
# A removal moves no block, so it builds no Keep client and never asks for the config.
ABSENT_ROUTES = UPLOAD_ROUTES[:2] + (("DELETE", "/arvados/v1/links/*"), ("POST", "/arvados/v1/collections/*/trash"))


def arm_bursts(emulator: Emulator, routes: t.Sequence[tuple[str, str]], burst: int, offset: int) -> list[tuple[str, str, int]]:
    """Make the first `burst` requests of each route fail, with statuses rotating through RETRIED_STATUSES."""
    statuses = itertools.islice(itertools.cycle(RETRIED_STATUSES), offset, None)
    armed = []
    for method, path in routes:
        for status in itertools.islice(statuses, burst):
            emulator.inject_fault(method, path, status=status, service="api")
            armed.append((method, path, status))
    return armed


def assert_every_fault_hit(emulator: Emulator, armed: list[tuple[str, str, int]], step: str = "") -> None:
    left = emulator.admin_call("GET", "/_emulator/faults")["faults"]
    routes = sorted(emulator.request_log()["routes"]["api"])
    assert not left, f"{step}: faults never reached, so those calls were not exercised: {left}; calls made: {routes}"
    failed = [entry for entry in emulator.request_log()["entries"] if entry["fault"] is not None]
    assert len(failed) == len(armed), failed


def successful(emulator: Emulator, method: str, route: str) -> int:
    entries = emulator.request_log()["entries"]
    return sum(1 for e in entries if e["service"] == "api" and e["method"] == method and e["route"] == route and e["status"] == 200)


def test_api_failures_on_every_call_of_an_upload(parallel_hosts: list[Host], build_image) -> None:
    """Two failures in a row on each call of an upload (within the default retry budget): one collection, two links."""
    image = build_image()

    def scenario(host: Host) -> None:
        emulator = host.emulator
        project = new_project(emulator, "api faults")
        offset = 0 if host.delivery == "option" else 4
        emulator.reset_request_log()
        armed = arm_bursts(emulator, UPLOAD_ROUTES, burst=2, offset=offset) + arm_bursts(emulator, [KEEP_SERVICES_ROUTE], burst=1, offset=offset)

        run = host.module({"name": image.repo_tag, "project_uuid": project})

        assert run.rc == 0 and run.result.get("changed"), run.describe()
        assert_every_fault_hit(emulator, armed)
        assert successful(emulator, "POST", "/arvados/v1/collections") == 2  # the upload's claim, the image's collection
        assert successful(emulator, "POST", "/arvados/v1/links") == 2
        collection = ClusterView(emulator.api("admin")).assert_converged(project, image)
        assert run.result["collection_uuid"] == collection["uuid"]

    on_each_host(parallel_hosts, scenario)


def test_api_failures_on_copy_update_and_removal(parallel_hosts: list[Host], build_image) -> None:
    """One failure on each call of a copy from another project, a property update, and a removal with purge."""
    image = build_image()

    def scenario(host: Host) -> None:
        emulator = host.emulator
        view = ClusterView(emulator.api("admin"))
        project, source_project = new_project(emulator, "api faults"), new_project(emulator, "copy source")
        assert host.module({"name": image.repo_tag, "project_uuid": source_project}).rc == 0
        offsets = itertools.count(1 if host.delivery == "option" else 5, 3)
        steps = (
            ("copy", COPY_ROUTES, {}, lambda result: result["actions"][0].startswith("copy")),
            ("update", UPDATE_ROUTES, {"properties": {"stage": "faults"}}, lambda result: "update" in result["actions"][0]),
        )
        for step, routes, extra, expected_action in steps:
            emulator.reset_request_log()
            armed = arm_bursts(emulator, routes, burst=1, offset=next(offsets))
            run = host.module({"name": image.repo_tag, "project_uuid": project, **extra})
            assert run.rc == 0 and run.result.get("changed") and expected_action(run.result), f"{step}: {run.describe()}"
            assert_every_fault_hit(emulator, armed, step)
            view.assert_converged(project, image)
        assert successful(emulator, "PUT", "/arvados/v1/collections/{uuid}") == 1

        emulator.reset_request_log()
        armed = arm_bursts(emulator, ABSENT_ROUTES, burst=1, offset=next(offsets))
        run = host.module({"name": image.repo_tag, "project_uuid": project, "state": "absent", "purge": True})
        assert run.rc == 0 and run.result.get("changed"), run.describe()
        assert_every_fault_hit(emulator, armed, "absent")
        assert view.collections_of_image(project, image.image_id) == []
        assert [link for link in view.image_links(project) if link["link_class"] == "docker_image_repo+tag"] == []
        view.assert_converged(source_project, image)

    on_each_host(parallel_hosts, scenario)


@pytest.mark.parametrize("fault", ["status", "dropped"])
def test_keep_put_failures(host: Host, project: str, build_image, fault: str) -> None:
    """A Keep PUT that fails, or loses its connection mid-body: the block is sent again, one collection results."""
    emulator = host.emulator
    image = build_image(size=3_000_000)
    emulator.reset_request_log()
    if fault == "status":
        emulator.inject_fault("PUT", "/*", status=503, service="keep")
    else:
        emulator.inject_fault("PUT", "/*", drop_after_bytes=1_000_000, service="keep")

    run = host.module({"name": image.repo_tag, "project_uuid": project})

    assert run.rc == 0 and run.result.get("changed"), run.describe()
    puts = [e for e in emulator.request_log()["entries"] if e["service"] == "keep" and e["method"] == "PUT"]
    assert [e["status"] for e in puts] == ([503, 200] if fault == "status" else ["dropped", 200]), puts
    ClusterView(emulator.api("admin")).assert_converged(project, image)


def test_keep_failures_beyond_the_budget_leave_nothing(host: Host, project: str, build_image) -> None:
    """Keep failing every PUT: a clear error, and no collection or link is created."""
    emulator = host.emulator
    view = ClusterView(emulator.api("admin"))
    image = build_image()
    before = view.snapshot()
    emulator.inject_fault("PUT", "/*", status=503, count=100, service="keep")

    run = host.module({"name": image.repo_tag, "project_uuid": project, "num_retries": 1})

    assert run.failed, run.describe()
    assert "writing sha256:" in run.msg and "to Keep failed" in run.msg and "no manifest was made" in run.msg, run.msg
    # Nothing but the upload's claim, trashed when the upload failed.
    after = view.snapshot()
    assert after.created_since(before) == set()
    [claim] = [view.api.collections().get(uuid=uuid, include_trash=True).execute() for uuid in after.trashed_claims - before.trashed_claims]
    assert (claim["name"], claim["is_trashed"]) == (f"arvados.cluster upload claim {image.image_id}", True)
