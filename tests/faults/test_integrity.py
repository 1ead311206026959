"""Integrity: the module stores only what loads as the image it claims to be, and a run stopped half-way says so.

Hostile archives (a tampered layer, members that climb out, escaping extra members, a missing layer, an OCI blob that
is not its digest) are each refused with nothing created (every object in the cluster counted before and after),
then the genuine archive is stored. `verify: true` repairs a tampered collection planted through the API. A run whose
links keep failing reports `changed` and names the collection it left. Paths that are not files, and `state: absent`
with a malformed or unknown project, fail in words.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import typing as t

import pytest

from cluster import ClusterView
from harness import archives
from hosts import Host

IMAGE_LINKS = ("docker_image_hash", "docker_image_repo+tag")


@pytest.fixture()
def delivery() -> str:
    """The token as a module option only: these cases are about the image's bytes, not about how the token arrives."""
    return "option"


@dataclasses.dataclass(frozen=True)
class Hostile:
    """One way to spoil a genuine archive, and the words the refusal must hold."""

    name: str
    make: t.Callable[[pathlib.Path, pathlib.Path], pathlib.Path]
    expected: tuple[str, ...]
    oci: bool = False


HOSTILE = (
    Hostile("tampered layer", archives.tampered_archive, ("layer.tar has sha256:", "diff_ids[0]", "`docker load` would refuse it")),
    Hostile("members climb out", archives.climbing_archive, ("member '../", "has a '..' component", "hostile")),
    Hostile("escaping extra members", archives.escaping_extras_archive, ("member '../../../../x'", "has a '..' component")),
    Hostile("missing layer", archives.missing_layer_archive, ("lacks", "layer.tar", "incomplete")),
    Hostile("OCI blob not its digest", archives.wrong_blob_archive, ("blob blobs/sha256/", "not the digest its name gives"), oci=True),
)


def genuine_archive(images, repo: str, folder: pathlib.Path, oci: bool) -> tuple[t.Any, pathlib.Path]:
    image = images.build(repo, "1.0", size=200_000)
    saved = images.save(image.ref, folder / "genuine.tar")
    if oci:
        saved = archives.oci_archive(saved, folder / "genuine-oci.tar", "1.0")
    return image, saved


def stored_once(view: ClusterView, project: str, image_id: str, repo_tag: str, portable_data_hash: str) -> dict[str, t.Any]:
    """Exactly one live collection of the image in the project, the one the run reported, with both links to it."""
    collections = [c for c in view.collections_of_image(project, image_id) if not c["is_trashed"]]
    assert [c["portable_data_hash"] for c in collections] == [portable_data_hash], collections
    links = {(link["link_class"], link["name"]) for link in view.image_links(project) if link["head_uuid"] == collections[0]["uuid"]}
    assert links == {("docker_image_hash", image_id), ("docker_image_repo+tag", repo_tag)}, links
    return collections[0]


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda hostile: hostile.name.replace(" ", "-"))
def test_hostile_archive_is_refused_with_nothing_created(host: Host, project: str, images, admin_view: ClusterView,
                                                         tmp_path: pathlib.Path, hostile: Hostile) -> None:
    repo = "faults/integrity-" + hostile.name.replace(" ", "-").lower()
    image, genuine = genuine_archive(images, repo, tmp_path, hostile.oci)
    spoiled = hostile.make(genuine, tmp_path / "spoiled.tar")
    args = {"name": image.ref, "source": "archive", "project_uuid": project}
    before = admin_view.snapshot()

    refused = host.module({**args, "archive_path": str(spoiled)})

    assert refused.failed and not refused.result.get("changed"), refused.describe()
    assert refused.msg.startswith("archive_path: ") and str(spoiled) in refused.msg, refused.msg
    for words in hostile.expected:
        assert words in refused.msg, f"{words!r} not in {refused.msg!r}"
    assert admin_view.snapshot().created_since(before) == set()

    stored = host.module({**args, "archive_path": str(genuine)})

    assert stored.rc == 0 and stored.result["changed"], stored.describe()
    assert stored.result["image_id"] == image.image_id
    stored_once(admin_view, project, image.image_id, image.ref, stored.result["portable_data_hash"])


def plant(emulator, project: str, image_id: str, repo_tag: str, archive: pathlib.Path) -> str:
    """A collection made straight through the API, named and linked as the image, holding `archive`'s bytes."""
    api = emulator.api("alice")
    data = archive.read_bytes()
    locator = api.keep.put(data, copies=1)
    manifest = f". {locator} 0:{len(data)}:{image_id.replace(':', chr(92) + '072')}.tar\n"
    collection = api.collections().create(body={"collection": {"owner_uuid": project, "name": f"planted {repo_tag.replace('/', ' ')}",
                                                               "manifest_text": manifest}}).execute()
    for link_class, name in zip(IMAGE_LINKS, (image_id, repo_tag)):
        api.links().create(body={"link": {"owner_uuid": project, "head_uuid": collection["uuid"], "link_class": link_class,
                                          "name": name, "properties": {}}}).execute()
    return collection["uuid"]


def test_verify_repairs_a_tampered_collection(host: Host, project: str, images, admin_view: ClusterView, tmp_path: pathlib.Path) -> None:
    image, genuine = genuine_archive(images, "faults/integrity-verify", tmp_path, oci=False)
    planted = plant(host.emulator, project, image.image_id, image.ref, archives.tampered_archive(genuine, tmp_path / "tampered.tar"))
    args = {"name": image.ref, "source": "archive", "archive_path": str(genuine), "project_uuid": project}

    trusted = host.module(args)
    assert trusted.rc == 0 and not trusted.result["changed"], "without verify, the held image id is trusted: " + trusted.describe()

    repaired = host.module({**args, "verify": True})

    assert repaired.rc == 0 and repaired.result["changed"], repaired.describe()
    upload = repaired.result["actions"][0]
    assert upload.startswith("upload image") and f"verify: collection {planted} does not load as this image" in upload, upload
    assert "diff_ids[0]" in upload, upload
    assert any(action.startswith(f"trash collection {planted}") for action in repaired.result["actions"]), repaired.result["actions"]
    collection = stored_once(admin_view, project, image.image_id, image.ref, repaired.result["portable_data_hash"])
    assert collection["uuid"] == repaired.result["collection_uuid"] != planted

    again = host.module({**args, "verify": True})
    assert again.rc == 0 and not again.result["changed"], again.describe()


def test_links_that_keep_failing_report_changed_and_name_the_collection(host: Host, project: str, build_image,
                                                                        admin_view: ClusterView) -> None:
    image = build_image()
    host.emulator.inject_fault("POST", "/arvados/v1/links", status=503, count=100, service="api")
    args = {"name": image.repo_tag, "project_uuid": project, "num_retries": 1}

    failed = host.module(args)

    host.emulator.clear_faults()
    assert failed.failed and failed.result.get("changed") is True, failed.describe()
    left = admin_view.collections_of_image(project, image.image_id)
    assert len(left) == 1 and admin_view.image_links(project) == [], left
    assert f"before it stopped, this run created collection {left[0]['uuid']}" in failed.msg, failed.msg

    rerun = host.module(args)
    assert rerun.rc == 0 and rerun.result["changed"] and rerun.result["collection_uuid"] == left[0]["uuid"], rerun.describe()
    admin_view.assert_converged(project, image)


@pytest.mark.parametrize("kind", ["directory", "FIFO", "device"])
def test_a_path_that_is_not_a_file_says_what_it_is(host: Host, project: str, admin_view: ClusterView, tmp_path: pathlib.Path,
                                                   kind: str) -> None:
    path = {"directory": str(tmp_path), "FIFO": str(tmp_path / "fifo"), "device": "/dev/zero"}[kind]
    if kind == "FIFO":
        os.mkfifo(path)
    before = admin_view.snapshot()

    run = host.module({"name": "faults/not-a-file:1.0", "source": "archive", "archive_path": path, "project_uuid": project},
                      timeout=60)

    words = {"directory": "is a directory", "FIFO": "is a FIFO (named pipe)", "device": "is a character device"}[kind]
    assert run.failed and f"archive_path: {path} {words}, not a regular file" in run.msg, run.describe()
    assert "no such file" not in run.msg and "give the path of a `docker save` or OCI image archive file" in run.msg
    assert admin_view.snapshot().created_since(before) == set()


@pytest.mark.parametrize("project_uuid, expected", [
    ("zzzzz-j7d0g-%", "project_uuid 'zzzzz-j7d0g-%' is not an Arvados uuid"),
    ("zzzzz-j7d0g-doesnotexist123", "project_uuid zzzzz-j7d0g-doesnotexist123 is not a project this token can read"),
])
def test_absent_checks_the_project_as_present_does(host: Host, admin_view: ClusterView, project_uuid: str, expected: str) -> None:
    before = admin_view.snapshot()
    run = host.module({"name": "faults/absent-project:1.0", "state": "absent", "project_uuid": project_uuid})
    assert run.failed and expected in run.msg, run.describe()
    assert admin_view.snapshot().created_since(before) == set()
