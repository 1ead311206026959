"""`source: pull` with `pull: always`: the stored collection records the manifest digest the daemon pulled and the
reference, as `source: registry` records them, so that check mode asks the registry (one manifest HEAD) whether the
tag moved, and names the image a pull would bring, pulling nothing. Against Debian's docker-registry on plain HTTP on
127.0.0.1, which the private dockerd pulls from.
"""
from __future__ import annotations

import typing as t

import pytest

from cluster import ClusterView
from harness.docker_env import Registry
from test_registry_source import count_requests

DIGEST = "docker-image-manifest-digest"
REFERENCE = "docker-image-registry-reference"


@pytest.fixture()
def delivery() -> str:
    return "option"


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory) -> t.Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("pull-registry")).start()
    yield registry
    registry.stop()


def daemon_image_of(images: t.Any, ref: str) -> dict[str, t.Any]:
    return images.client.api.inspect_image(ref)


def properties_of(view: ClusterView, collection_uuid: str) -> dict[str, t.Any]:
    return view.api.collections().get(uuid=collection_uuid).execute()["properties"]


def test_check_mode_names_the_image_a_pull_would_bring(host, images, plain_registry, project, admin_view) -> None:
    first = images.build("faults/pull-always", "1.0", size=60_000, seed=21)
    pushed = images.push(first.ref, plain_registry)
    images.remove(pushed)
    args = {"name": pushed, "source": "pull", "pull": "always", "project_uuid": project}

    stored = host.module(args)
    assert stored.rc == 0 and stored.result["changed"] and stored.result["image_id"] == first.image_id, stored.describe()
    repo_digests = daemon_image_of(images, pushed)["RepoDigests"]
    recorded = properties_of(admin_view, stored.result["collection_uuid"])
    assert f"{pushed.rsplit(':', 1)[0]}@{recorded[DIGEST]}" in repo_digests
    assert recorded[REFERENCE] == pushed

    # Nothing moved: one HEAD of the manifest, which matches the recorded digest; no manifest read.
    heads, gets = count_requests(plain_registry, "HEAD", "/manifests/"), count_requests(plain_registry, "GET", "/manifests/")
    same = host.module(args, check=True)
    assert not same.result["changed"] and same.result["image_id"] == first.image_id, same.describe()
    assert count_requests(plain_registry, "HEAD", "/manifests/") - heads == 1
    assert count_requests(plain_registry, "GET", "/manifests/") == gets

    # The tag moves on the registry while the daemon still holds the old image under it.
    second = images.build("faults/pull-always", "1.0", size=60_000, seed=22)
    images.push(second.ref, plain_registry)
    repository, tag = pushed.rsplit(":", 1)
    images.client.api.tag(first.image_id, repository, tag)
    before = admin_view.snapshot()

    moved = host.module(args, check=True)
    assert moved.result["changed"] and moved.result["image_id"] == second.image_id, moved.describe()
    assert daemon_image_of(images, pushed)["Id"] == first.image_id, "check mode pulled"
    assert not admin_view.snapshot().created_since(before)
    # pull: missing takes the daemon's image, as a real run would.
    missing = host.module({**args, "pull": "missing"}, check=True)
    assert not missing.result["changed"] and missing.result["image_id"] == first.image_id, missing.describe()

    pulled = host.module(args)
    assert pulled.result["changed"] and pulled.result["image_id"] == second.image_id, pulled.describe()
    assert properties_of(admin_view, pulled.result["collection_uuid"])[DIGEST] != recorded[DIGEST]
