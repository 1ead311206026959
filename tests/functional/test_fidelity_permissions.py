"""Permissions and tokens as upstream clients meet them: what bob can see of alice's images, expired tokens."""
from __future__ import annotations

import datetime
import time
import uuid as uuidlib

import arvados
import arvados.errors
import pytest
from arvados.commands.keepdocker import list_images_in_arv

from upstream import UserShell, create_project, describe, grant, image_archive_summary, keep_puts, printed_uuid


def unique_repo(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:8]}"


def listed_collections(api, **kwargs) -> list[str]:
    return [collection_uuid for collection_uuid, _info in list_images_in_arv(api, 2, **kwargs)]


def assert_bob_cannot_use(bob: UserShell, bob_api, repo: str, tag: str, image_id: str, collection: dict, tmp_path) -> None:
    assert listed_collections(bob_api, image_name=repo, image_tag=tag) == []
    assert collection["uuid"] not in listed_collections(bob_api)
    # arv-keepdocker without the image in the local daemon falls back to what Arvados lists: nothing.
    result = bob.keepdocker(repo, tag)
    assert result.returncode == 1, describe(result)
    assert "no matching image found" in result.stderr
    for locator in (collection["uuid"], collection["portable_data_hash"]):
        fetched = bob.get(f"{locator}/{image_id}.tar", str(tmp_path / "denied.tar"))
        assert fetched.returncode != 0, describe(fetched)
        assert "HttpError 404" in fetched.stderr


def assert_bob_can_use(bob: UserShell, bob_api, repo: str, tag: str, image_id: str, collection: dict, tmp_path) -> None:
    listed = list_images_in_arv(bob_api, 2, image_name=repo, image_tag=tag)
    assert [(uuid, info["dockerhash"]) for uuid, info in listed] == [(collection["uuid"], image_id)]
    for locator in (collection["uuid"], collection["portable_data_hash"]):
        fetched = tmp_path / f"bob-{locator.replace('+', '-')}.tar"
        result = bob.get(f"{locator}/{image_id}.tar", str(fetched))
        assert result.returncode == 0, describe(result)
        assert image_archive_summary(fetched)["config_digest"] == image_id


@pytest.fixture()
def alice_image(images):
    """An image built for this test only; removed from the daemon by the test once it is in Arvados."""
    repo = unique_repo("fid-perm")
    image = images.build(repo, "1.0")
    yield repo, image
    images.remove(image.ref)


def upload_then_forget_locally(alice: UserShell, images, image, *args: str) -> str:
    repo, tag = image.ref.rsplit(":", 1)
    collection_uuid = printed_uuid(alice.keepdocker(*args, repo, tag))
    images.remove(image.ref)
    return collection_uuid


def test_home_project_share_needs_can_manage(fresh_emulator, dockerd, images, alice_image, tmp_path):
    """can_read on a user reaches the user record only; can_manage reaches what the user owns.

    Arvados' permission model (doc/api/permission-model, should_traverse_owned in the permission table).
    """
    repo, image = alice_image
    alice = UserShell.for_user(fresh_emulator, "alice", tmp_path, dockerd)
    bob = UserShell.for_user(fresh_emulator, "bob", tmp_path, dockerd)
    alice_api, bob_api = fresh_emulator.api(user="alice"), fresh_emulator.api(user="bob")
    alice_uuid, bob_uuid = fresh_emulator.users["alice"]["uuid"], fresh_emulator.users["bob"]["uuid"]
    collection_uuid = upload_then_forget_locally(alice, images, image)
    collection = alice_api.collections().get(uuid=collection_uuid).execute()

    assert_bob_cannot_use(bob, bob_api, repo, "1.0", image.image_id, collection, tmp_path)

    grant(alice_api, bob_uuid, alice_uuid, "can_read")
    assert bob_api.users().get(uuid=alice_uuid).execute()["uuid"] == alice_uuid
    assert_bob_cannot_use(bob, bob_api, repo, "1.0", image.image_id, collection, tmp_path)

    grant(alice_api, bob_uuid, alice_uuid, "can_manage")
    assert_bob_can_use(bob, bob_api, repo, "1.0", image.image_id, collection, tmp_path)

    # Readable elsewhere, so arv-keepdocker copies the image into bob's home project; no bytes move.
    fresh_emulator.reset_request_log()
    copy_uuid = printed_uuid(bob.keepdocker(repo, "1.0"))
    assert keep_puts(fresh_emulator.request_log()) == []
    copy = bob_api.collections().get(uuid=copy_uuid).execute()
    assert copy_uuid != collection_uuid
    assert copy["owner_uuid"] == bob_uuid
    assert copy["portable_data_hash"] == collection["portable_data_hash"]


def test_project_share_lets_bob_use_images_in_it(emulator, dockerd, images, alice_image, tmp_path):
    repo, image = alice_image
    alice = UserShell.for_user(emulator, "alice", tmp_path, dockerd)
    bob = UserShell.for_user(emulator, "bob", tmp_path, dockerd)
    alice_api, bob_api = emulator.api(user="alice"), emulator.api(user="bob")
    project_uuid = create_project(alice_api, repo)
    # The same image in alice's home project and, copied, in the project: one PDH, two collections.
    home_uuid = printed_uuid(alice.keepdocker(repo, "1.0"))
    collection_uuid = upload_then_forget_locally(alice, images, image, "--project-uuid", project_uuid)
    collection = alice_api.collections().get(uuid=collection_uuid).execute()
    home_copy = alice_api.collections().get(uuid=home_uuid).execute()
    assert collection["owner_uuid"] == project_uuid
    assert collection["portable_data_hash"] == home_copy["portable_data_hash"]

    assert_bob_cannot_use(bob, bob_api, repo, "1.0", image.image_id, collection, tmp_path)

    grant(alice_api, emulator.users["bob"]["uuid"], project_uuid)
    # Only the project's copy is readable to bob; reading by PDH must find that one.
    assert_bob_can_use(bob, bob_api, repo, "1.0", image.image_id, collection, tmp_path)
    assert listed_collections(bob_api, project_uuid=project_uuid) == [collection_uuid]


def iso_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sdk_client(emulator, token: str):
    return arvados.api("v1", host=emulator.api_host, token=token, insecure=True, num_retries=0)


def assert_unauthorized(api) -> None:
    with pytest.raises(arvados.errors.ApiError) as raised:
        api.users().current().execute()
    assert raised.value.resp.status == 401


def test_expired_token_gets_401(emulator, isolated_home, tmp_path):
    expired = emulator.mint_token("alice", iso_time(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)))
    assert_unauthorized(sdk_client(emulator, expired))

    result = UserShell.for_token(emulator, expired, tmp_path, "expired").keepdocker("images")
    assert result.returncode != 0, describe(result)
    assert "HttpError 401" in result.stderr


def test_token_stops_working_at_its_expiry(emulator, isolated_home):
    lifetime = 3
    expires_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lifetime)
    api = sdk_client(emulator, emulator.mint_token("alice", iso_time(expires_at)))
    assert api.users().current().execute()["uuid"] == emulator.users["alice"]["uuid"]
    time.sleep(max(0.0, (expires_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1)
    assert_unauthorized(api)
