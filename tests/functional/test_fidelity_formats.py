"""arv-keepdocker against a server whose dockerImageFormats does not include the image's format."""
from __future__ import annotations

import pytest

from upstream import UserShell, collection_files, describe, keep_puts, printed_uuid, write_requests

REPO = "fid-format"


@pytest.fixture()
def alice(fresh_emulator, dockerd, tmp_path) -> UserShell:
    return UserShell.for_user(fresh_emulator, "alice", tmp_path, dockerd)


def refused_without_side_effects(emulator, alice: UserShell, tag: str) -> str:
    emulator.reset_request_log()
    result = alice.keepdocker(REPO, tag)
    assert result.returncode == 1, describe(result)
    assert "refusing to store incompatible format (use --force-image-format to override)" in result.stderr
    log = emulator.request_log()
    assert write_requests(log) == []
    assert keep_puts(log) == []
    return result.stderr


def test_v1_only_server_refuses_v2_image(fresh_emulator, alice, images):
    images.build(REPO, "v1-only")
    fresh_emulator.set_docker_image_formats(["v1"])
    stderr = refused_without_side_effects(fresh_emulator, alice, "v1-only")
    assert "image format is 'v2' but server supports only ['v1']" in stderr


def test_unspecified_formats_refuse_unless_forced(fresh_emulator, alice, images):
    tag = "unspecified"
    image = images.build(REPO, tag)
    fresh_emulator.set_docker_image_formats([])
    stderr = refused_without_side_effects(fresh_emulator, alice, tag)
    assert "server does not specify supported image formats" in stderr

    forced = alice.keepdocker("--force-image-format", REPO, tag)
    collection_uuid = printed_uuid(forced)
    assert "forcing incompatible image" in forced.stderr
    collection = fresh_emulator.api(user="alice").collections().get(uuid=collection_uuid).execute()
    assert collection["name"] == f"Docker image {REPO}:{tag} {image.image_id[:12]}"
    assert list(collection_files(fresh_emulator.api(user="alice"), collection_uuid)) == [f"{image.image_id}.tar"]
