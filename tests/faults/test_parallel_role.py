"""The docker_images role ensures missing images several at a time: uploads overlap, a failing item fails the role
only after the others ended, naming it, and a Keep write dropped mid-way is retried without a second collection."""
from __future__ import annotations

import typing as t

import pytest

from cluster import ClusterView
from hosts import Host

ROLE = "arvados.cluster.docker_images"
UPLOAD_TASK = "Ensure the images a project lacks, and those to verify or force, several at a time"
# Keep PUTs held this long make overlapping uploads visible in the request log.
PUT_HOLD_SECONDS = 1.5
BAD_ITEM = "faults/parallel-role-not-built:1.0"


@pytest.fixture()
def delivery() -> str:
    """The role takes its token as a variable: one delivery is enough here."""
    return "option"


def keep_puts(emulator) -> list[dict[str, t.Any]]:
    return [entry for entry in emulator.request_log()["entries"] if entry["service"] == "keep" and entry["method"] == "PUT"]


def most_at_once(entries: list[dict[str, t.Any]]) -> int:
    """The largest number of these requests that were being served at the same moment."""
    edges = sorted([(entry["time"], 1) for entry in entries] + [(entry["time"] + entry["duration"], -1) for entry in entries])
    running = peak = 0
    for _moment, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def role_run(host: Host, items: list[dict[str, t.Any]], parallel: int):
    variables = {"docker_images_items": items, "docker_images_parallel": parallel, "docker_images_docker_host": host.docker_host,
                 "docker_images_api_host": host.emulator.api_host, "docker_images_api_token": host.token,
                 "docker_images_api_insecure": True}
    return host.checked(host.runner.run([{"name": "the role", "ansible.builtin.include_role": {"name": ROLE}, "vars": variables}]))


def test_one_bad_item_and_a_dropped_keep_write(host: Host, project: str, build_image) -> None:
    emulator = host.emulator
    images = [build_image(f"item{index}", size=300_000) for index in range(4)]
    items = [{"name": image.repo_tag, "project_uuid": project} for image in images]
    items.insert(2, {"name": BAD_ITEM, "project_uuid": project})
    emulator.set_latency("PUT", "/*", PUT_HOLD_SECONDS, service="keep")
    emulator.inject_fault("PUT", "/*", drop_after_bytes=100_000, service="keep")
    emulator.reset_request_log()

    run = role_run(host, items, parallel=4)

    failure = run.first_failure()
    assert run.rc != 0 and failure is not None, run.describe()
    assert failure["msg"].startswith("1 of 5 images failed"), failure["msg"]
    assert BAD_ITEM in failure["msg"] and not any(image.repo_tag in failure["msg"] for image in images), failure["msg"]
    results = failure["results"]
    assert [bool(result.get("failed")) for result in results] == [False, False, True, False, False]
    assert all(result["changed"] for index, result in enumerate(results) if index != 2)
    view = ClusterView(emulator.api("admin"))
    stored = [view.assert_converged(project, image) for image in images]
    assert [result["collection_uuid"] for index, result in enumerate(results) if index != 2] == [c["uuid"] for c in stored]
    puts = keep_puts(emulator)
    assert [put["status"] for put in puts].count("dropped") == 1, puts
    assert [put["status"] for put in puts].count(200) == len(images), puts
    assert most_at_once([put for put in puts if put["status"] == 200]) >= 3, "the uploads did not overlap"


def test_parallel_one_uploads_one_at_a_time(host: Host, project: str, build_image) -> None:
    """The bound holds: with docker_images_parallel 1, no two uploads overlap; the role's results are the same."""
    emulator = host.emulator
    images = [build_image(f"item{index}", size=100_000) for index in range(3)]
    emulator.set_latency("PUT", "/*", 0.5, service="keep")
    emulator.reset_request_log()

    run = role_run(host, [{"name": image.repo_tag, "project_uuid": project} for image in images], parallel=1)

    assert run.rc == 0 and run.first_failure() is None, run.describe()
    assert most_at_once(keep_puts(emulator)) == 1
    view = ClusterView(emulator.api("admin"))
    for image in images:
        view.assert_converged(project, image)


def test_missing_images_cost_few_requests(host: Host, project: str, build_image) -> None:
    """Per missing image: the two listings of arv-keepdocker's own check, the claim (create, then the one read that also
    tells whether another run stored the image meanwhile, then trash), the collection and its two links, and one read of
    what the name resolves to after; the discovery document once per task that talks to the cluster, whatever the
    number of threads."""
    emulator = host.emulator
    images = [build_image(f"counted{index}", size=100_000) for index in range(5)]
    emulator.reset_request_log()

    run = role_run(host, [{"name": image.repo_tag, "project_uuid": project} for image in images], parallel=4)

    assert run.rc == 0 and run.first_failure() is None, run.describe()
    requests = [f"{entry['method']} {entry['route']}" for entry in emulator.request_log()["entries"] if entry["service"] == "api"]
    count = len(images)
    # The lookups' task, the upload task and the task that publishes what the names resolve to after.
    assert requests.count("GET /discovery/v1/apis/arvados/v1/rest") == 3, requests
    assert requests.count("GET /arvados/v1/keep_services/accessible") == 1, requests
    assert (requests.count("POST /arvados/v1/collections"), requests.count("POST /arvados/v1/collections/{uuid}/trash"),
            requests.count("POST /arvados/v1/links")) == (2 * count, count, 2 * count), requests
    # Per image: the project's unlinked uploads, read once the claim is held (the listings of an image found nowhere ask
    # for the collections of no image, answered without a request); the collection just created is not read again. The
    # publishing lookup reads the new collections in one request.
    assert requests.count("GET /arvados/v1/collections") == count + 1, requests
    # Per image: the tag and hash links in each listing, and the name's links after the run (none before it, when nothing
    # asks for a diff).
    assert requests.count("GET /arvados/v1/links") <= 5 * count + 5, requests
    assert len(requests) <= 15 * count + 20, requests
