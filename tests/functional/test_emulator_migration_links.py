"""docker_image_migration links carry portable data hashes as head and tail; the server stores them unchecked."""
from __future__ import annotations

import arvados.errors
import pytest

BLOCK = b"migration link\n"


def image_collection(api, name: str) -> dict:
    locator = api.keep.put(BLOCK)
    manifest = f". {locator} 0:{len(BLOCK)}:{name}\n"
    return api.collections().create(body={"collection": {"manifest_text": manifest}}, ensure_unique_name=True).execute()


def test_admin_links_two_portable_data_hashes_as_the_system_user(emulator):
    admin = emulator.api("admin")
    old = image_collection(admin, "0" * 64 + ".tar")
    new = image_collection(admin, "sha256\\072" + "0" * 64 + ".tar")
    body = {"link_class": "docker_image_migration", "name": "migrate_1.9_1.10", "owner_uuid": emulator.system_user_uuid,
            "tail_uuid": old["portable_data_hash"], "head_uuid": new["portable_data_hash"]}
    link = admin.links().create(body={"link": body}).execute()
    assert (link["tail_uuid"], link["head_uuid"], link["owner_uuid"]) == (
        old["portable_data_hash"], new["portable_data_hash"], emulator.system_user_uuid)
    # As on a real cluster, only admins read what the system user owns.
    alice = emulator.api("alice")
    assert alice.links().list(filters=[["uuid", "=", link["uuid"]]]).execute()["items"] == []


def test_uuids_are_still_checked(emulator):
    alice = emulator.api("alice")
    with pytest.raises(arvados.errors.ApiError, match="Head uuid .* not found"):
        alice.links().create(body={"link": {"link_class": "tag", "name": "x", "head_uuid": "zzzzz-4zz18-000000000000000"}}).execute()
