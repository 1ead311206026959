"""Upstream arv-keepdocker against the emulator: upload, no-op re-run, copy into a project, --force, listing."""
from __future__ import annotations

import dataclasses
import subprocess

import pytest

from harness.docker_env import BuiltImage, parse_created
from upstream import (
    UserShell,
    collection_files,
    count_requests,
    create_project,
    describe,
    docker_links,
    grant,
    image_archive_summary,
    keep_puts,
    links_by_class,
    printed_uuid,
    write_requests,
)

REPO, TAG = "tiny", "1.0"


@dataclasses.dataclass
class Upload:
    image: BuiltImage
    result: subprocess.CompletedProcess[str]
    collection_uuid: str

    @property
    def image_id(self) -> str:
        return self.image.image_id

    @property
    def collection_name(self) -> str:
        # arv-keepdocker: 'Docker image <repo:tag, / as space> <first 12 characters of the id>'
        return f"Docker image {REPO}:{TAG} {self.image_id[:12]}"


@pytest.fixture(scope="module")
def first_upload(emulator, dockerd, images, tmp_path_factory) -> Upload:
    """alice's first `arv-keepdocker tiny 1.0`, shared by the tests that look at what it left."""
    image = images.build(REPO, TAG)
    shell = UserShell.for_user(emulator, "alice", tmp_path_factory.mktemp("keepdocker-first"), dockerd)
    result = shell.keepdocker(REPO, TAG)
    return Upload(image, result, printed_uuid(result))


@pytest.fixture()
def alice(emulator, dockerd, tmp_path) -> UserShell:
    return UserShell.for_user(emulator, "alice", tmp_path, dockerd)


@pytest.fixture(scope="module")
def alice_api(emulator):
    return emulator.api(user="alice")


def test_first_upload_creates_collection_with_one_image_file(first_upload, alice_api, emulator):
    collection = alice_api.collections().get(uuid=first_upload.collection_uuid).execute()
    assert collection["owner_uuid"] == emulator.users["alice"]["uuid"]
    assert collection["name"] == first_upload.collection_name
    assert collection["properties"] == {"docker-image-repo-tag": f"{REPO}:{TAG}"}
    assert list(collection_files(alice_api, first_upload.collection_uuid)) == [f"{first_upload.image_id}.tar"]


def test_first_upload_links_carry_image_timestamp(first_upload, alice_api, emulator, images, tmp_path):
    saved = tmp_path / "saved.tar"
    images.save(first_upload.image.ref, saved)
    created = image_archive_summary(saved)["created"]
    assert parse_created(created) == parse_created(first_upload.image.created)

    links = links_by_class(docker_links(alice_api, first_upload.collection_uuid))
    assert sorted(links) == ["docker_image_hash", "docker_image_repo+tag"]
    hash_link, = links["docker_image_hash"]
    repo_tag_link, = links["docker_image_repo+tag"]
    assert hash_link["name"] == first_upload.image_id
    assert repo_tag_link["name"] == f"{REPO}:{TAG}"
    for link in (hash_link, repo_tag_link):
        assert link["properties"] == {"image_timestamp": created}
        assert link["owner_uuid"] == emulator.users["alice"]["uuid"]
        assert link["tail_uuid"] is None


def test_first_upload_stores_the_saved_image(first_upload, alice, alice_api, images, tmp_path):
    fetched = tmp_path / "fetched.tar"
    file_name = f"{first_upload.image_id}.tar"
    result = alice.get(f"{first_upload.collection_uuid}/{file_name}", str(fetched))
    assert result.returncode == 0, describe(result)
    assert collection_files(alice_api, first_upload.collection_uuid)[file_name] == fetched.stat().st_size
    saved = tmp_path / "saved.tar"
    images.save(first_upload.image.ref, saved)

    stored = image_archive_summary(fetched)
    assert stored["config_digest"] == first_upload.image_id
    assert stored["layer_digests"] == stored["diff_ids"]
    assert stored == image_archive_summary(saved)


def test_rerun_is_a_noop(first_upload, alice, emulator):
    emulator.reset_request_log()
    result = alice.keepdocker(REPO, TAG)
    assert printed_uuid(result) == first_upload.collection_uuid
    log = emulator.request_log()
    assert write_requests(log) == []
    assert keep_puts(log) == []
    assert count_requests(log, "GET", "/arvados/v1/links") >= 1


@pytest.fixture()
def shared_project(emulator) -> str:
    """A project of bob's that alice may write to (can_write permission link, created by bob)."""
    bob_api = emulator.api(user="bob")
    project_uuid = create_project(bob_api, "fidelity shared")
    grant(bob_api, emulator.users["alice"]["uuid"], project_uuid, "can_write")
    return project_uuid


def test_project_uuid_copies_without_upload(first_upload, alice, alice_api, emulator, shared_project):
    emulator.reset_request_log()
    result = alice.keepdocker("--project-uuid", shared_project, REPO, TAG)
    copy_uuid = printed_uuid(result)
    log = emulator.request_log()

    assert copy_uuid != first_upload.collection_uuid
    assert keep_puts(log) == []
    assert count_requests(log, "POST", "/arvados/v1/collections") == 1
    assert count_requests(log, "POST", "/arvados/v1/links") == 2

    original = alice_api.collections().get(uuid=first_upload.collection_uuid).execute()
    copy = alice_api.collections().get(uuid=copy_uuid).execute()
    assert copy["owner_uuid"] == shared_project
    assert copy["portable_data_hash"] == original["portable_data_hash"]
    assert copy["name"] == first_upload.collection_name
    assert copy["properties"] == {"docker-image-repo-tag": f"{REPO}:{TAG}"}

    original_links = links_by_class(docker_links(alice_api, first_upload.collection_uuid))
    links = links_by_class(docker_links(alice_api, copy_uuid))
    assert sorted(links) == ["docker_image_hash", "docker_image_repo+tag"]
    assert [link["name"] for link in links["docker_image_hash"]] == [first_upload.image_id]
    assert [link["name"] for link in links["docker_image_repo+tag"]] == [f"{REPO}:{TAG}"]
    for link in links["docker_image_hash"] + links["docker_image_repo+tag"]:
        assert link["owner_uuid"] == shared_project
        assert link["properties"] == original_links["docker_image_hash"][0]["properties"]

    # The project's owner sees what alice put there.
    bob_copy = emulator.api(user="bob").collections().get(uuid=copy_uuid).execute()
    assert bob_copy["portable_data_hash"] == original["portable_data_hash"]


def test_rerun_into_project_that_holds_the_image_is_a_noop(first_upload, alice, emulator, shared_project):
    copy_uuid = printed_uuid(alice.keepdocker("--project-uuid", shared_project, REPO, TAG))
    emulator.reset_request_log()
    again = alice.keepdocker("--project-uuid", shared_project, REPO, TAG)
    assert printed_uuid(again) == copy_uuid
    assert write_requests(emulator.request_log()) == []


def test_force_uploads_again_with_unique_name(first_upload, alice, alice_api, emulator):
    emulator.reset_request_log()
    result = alice.keepdocker("--force", REPO, TAG)
    forced_uuid = printed_uuid(result)
    log = emulator.request_log()

    assert forced_uuid != first_upload.collection_uuid
    assert keep_puts(log) != []
    forced = alice_api.collections().get(uuid=forced_uuid).execute()
    original = alice_api.collections().get(uuid=first_upload.collection_uuid).execute()
    # The server keeps (owner, name) unique by appending the new uuid's random part.
    assert forced["name"] == f"{first_upload.collection_name} ({forced_uuid[-15:]})"
    assert forced["owner_uuid"] == original["owner_uuid"]
    assert list(collection_files(alice_api, forced_uuid)) == [f"{first_upload.image_id}.tar"]
    assert original["name"] == first_upload.collection_name
    links = links_by_class(docker_links(alice_api, forced_uuid))
    assert [link["name"] for link in links["docker_image_hash"]] == [first_upload.image_id]
    assert [link["name"] for link in links["docker_image_repo+tag"]] == [f"{REPO}:{TAG}"]


def test_images_lists_the_upload(first_upload, alice):
    result = alice.keepdocker("images")
    assert result.returncode == 0, describe(result)
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["REPOSITORY", "TAG", "IMAGE", "ID"]
    listed = {row.split()[3]: row.split()[:3] for row in rows}
    assert listed[first_upload.collection_uuid] == [REPO, TAG, first_upload.image_id[:12]]


def test_project_uuid_without_write_permission_is_refused(first_upload, alice, emulator):
    bob_api = emulator.api(user="bob")
    project_uuid = create_project(bob_api, "fidelity read-only")
    grant(bob_api, emulator.users["alice"]["uuid"], project_uuid, "can_read")

    result = alice.keepdocker("--project-uuid", project_uuid, REPO, TAG)
    assert result.returncode != 0, describe(result)
    assert "HttpError 403" in result.stderr
    assert bob_api.collections().list(filters=[["owner_uuid", "=", project_uuid]]).execute()["items"] == []
    assert bob_api.links().list(filters=[["owner_uuid", "=", project_uuid]]).execute()["items"] == []
