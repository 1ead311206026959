"""The module killed (SIGKILL) at chosen points of an upload, then run again.

Emulator latency holds the module at the step under test; the test then kills it, checks that no link points at a
missing or incomplete collection (while held, after the kill, after the next run), and that the next run converges
to exactly one complete collection with both links, without uploading the image again once its collection is saved.
The module runs shipped (AnsiballZ), so that the process killed is the module's alone, as on a managed host.
"""
from __future__ import annotations

import time
import typing as t
import urllib.parse

import psutil
import pytest

from cluster import ClusterView, ExpectedImage
from hosts import Host, new_project, on_each_host
from playbooks import SHIPPED, RunningPlaybook
from resume_files import cache_path, cached_blocks, put_hashes

POLL_SECONDS = 0.05
WAIT_FOR_STEP_SECONDS = 90
MIB = 1024 * 1024
# Three Keep blocks (64 MiB each), so some are stored and others not when the module is killed.
THREE_BLOCK_PAYLOAD = 130 * MIB


@pytest.fixture()
def execution() -> str:
    return SHIPPED


def entries(emulator, service: str, method: str, route: str, status: t.Any = 200) -> list[dict]:
    return [e for e in emulator.request_log()["entries"]
            if e["service"] == service and e["method"] == method and e["route"] == route and e["status"] == status]


def keep_port(emulator) -> int:
    return urllib.parse.urlsplit(emulator.keep_url).port


def sending_to_keep(running: RunningPlaybook, port: int) -> bool:
    """Whether the module has a connection open to Keep, i.e. a block PUT under way."""
    for process in running.module_processes():
        try:
            if any(c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED for c in process.net_connections("tcp")):
                return True
        except psutil.NoSuchProcess:
            continue
    return False


def kill_when(running: RunningPlaybook, ready: t.Callable[[], bool], check: t.Callable[[], None]) -> None:
    """Wait for the step under test (checking the invariant meanwhile), then SIGKILL the module."""
    deadline = time.monotonic() + WAIT_FOR_STEP_SECONDS
    while not ready():
        check()
        assert running.running(), "the module ended before it reached the step under test"
        assert time.monotonic() < deadline, "the module never reached the step under test"
        time.sleep(POLL_SECONDS)
    assert running.kill_module() >= 1, "no module process to kill"


class Interruption:
    """One kill point: the requests held (by latency) while the module is killed there, and when it has got there.

    A held API request would still be carried out by the server once its latency is over, as a real server may carry
    out the request of a client that died; `refuse_held` makes it fail instead, so the kill lands before that step.
    """

    def __init__(self, name: str, hold: tuple[str, str, str], hold_seconds: float, payload: int = 1000, refuse_held: bool = False) -> None:
        self.name = name
        self.method, self.path, self.service = hold
        self.hold_seconds = hold_seconds
        self.payload = payload
        self.refuse_held = refuse_held

    def reached(self, emulator, running: RunningPlaybook) -> bool:
        if self.name == "first block PUT":
            return sending_to_keep(running, keep_port(emulator))
        if self.name == "some blocks stored":
            return len(entries(emulator, "keep", "PUT", "/{locator}")) >= 1
        if self.name == "collection saved, no link":  # after the upload's claim
            return len(entries(emulator, "api", "POST", "/arvados/v1/collections")) == 2
        return len(entries(emulator, "api", "POST", "/arvados/v1/links")) == 1


INTERRUPTIONS = (
    Interruption("first block PUT", ("PUT", "/*", "keep"), hold_seconds=3),
    Interruption("some blocks stored", ("PUT", "/*", "keep"), hold_seconds=3, payload=THREE_BLOCK_PAYLOAD),
    Interruption("collection saved, no link", ("POST", "/arvados/v1/links", "api"), hold_seconds=3, refuse_held=True),
    Interruption("one link made", ("POST", "/arvados/v1/links", "api"), hold_seconds=2, refuse_held=True),
)


@pytest.mark.parametrize("interruption", INTERRUPTIONS, ids=lambda interruption: interruption.name.replace(" ", "-").replace(",", ""))
def test_killed_upload_converges_on_the_next_run(parallel_hosts: list[Host], build_image, interruption: Interruption) -> None:
    image: ExpectedImage = build_image(size=interruption.payload)
    on_each_host(parallel_hosts, lambda host: kill_and_run_again(host, image, interruption))


def kill_and_run_again(host: Host, image: ExpectedImage, interruption: Interruption) -> None:
    emulator = host.emulator
    view = ClusterView(emulator.api("admin"))
    project = new_project(emulator, "interrupted uploads")
    args = {"name": image.repo_tag, "project_uuid": project}

    def no_broken_links() -> None:
        assert view.broken_links(project, [image]) == []

    def reached() -> bool:
        if not interruption.reached(emulator, running):
            return False
        if interruption.refuse_held:
            emulator.inject_fault(interruption.method, interruption.path, status=503, service=interruption.service)
        return True

    emulator.set_latency(interruption.method, interruption.path, interruption.hold_seconds, service=interruption.service)
    emulator.reset_request_log()
    running = host.start(args)
    kill_when(running, reached, no_broken_links)
    killed = host.finish(running)
    assert killed.failed and killed.result.get("rc") == -9, killed.describe()
    confirmed = cached_blocks(cache_path(host, image.image_id))
    # Requests in flight when the module died end on the server after their latency.
    time.sleep(interruption.hold_seconds + 1)
    emulator.clear_faults()
    no_broken_links()
    saved = len(entries(emulator, "api", "POST", "/arvados/v1/collections")) - 1  # less the upload's claim
    links_made = len(entries(emulator, "api", "POST", "/arvados/v1/links"))
    assert saved == (1 if interruption.refuse_held else 0)
    assert links_made == (1 if interruption.name == "one link made" else 0)

    emulator.reset_request_log()
    rerun = host.module(args)

    assert rerun.rc == 0 and rerun.result.get("changed"), rerun.describe()
    no_broken_links()
    collection = view.assert_converged(project, image)
    assert rerun.result["collection_uuid"] == collection["uuid"]
    if saved:
        # The saved collection was found again: no byte was sent twice, and only the missing links were made.
        assert entries(emulator, "keep", "PUT", "/{locator}") == []
        assert entries(emulator, "api", "POST", "/arvados/v1/collections") == []
        assert len(entries(emulator, "api", "POST", "/arvados/v1/links")) == 2 - links_made
    else:
        # The killed run's claim is taken over at once (same host lock): a claim, then the image's collection. Blocks Keep
        # had confirmed before the kill (the resume cache) are not sent again; the others are.
        assert len(entries(emulator, "api", "POST", "/arvados/v1/collections")) == 2
        assert len(entries(emulator, "keep", "PUT", "/{locator}")) == image.blocks - len(confirmed)
        assert not put_hashes(emulator) & {key.split("+")[0] for key in confirmed}
    assert not cache_path(host, image.image_id).exists()
