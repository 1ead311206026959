"""Upstream arv-put then arv-get against the emulator: bytes survive, blocks and PDH are as Keep makes them."""
from __future__ import annotations

import pytest

from helpers import random_file, sha256_file
from upstream import (
    KEEP_BLOCK_SIZE,
    UserShell,
    block_locators,
    describe,
    keep_puts,
    logged_requests,
    portable_data_hash,
    printed_uuid,
    write_requests,
)

MIB = 2 ** 20


@pytest.fixture()
def alice(emulator, tmp_path) -> UserShell:
    return UserShell.for_user(emulator, "alice", tmp_path)


@pytest.mark.parametrize("size, blocks", [
    pytest.param(3 * MIB + 17, 1, id="few-MiB"),
    pytest.param(KEEP_BLOCK_SIZE + 5 * MIB + 3, 2, id="over-64MiB", marks=pytest.mark.slow),
])
def test_put_then_get_round_trips(emulator, alice, tmp_path, size, blocks):
    source = random_file(tmp_path / "payload.bin", size)
    expected_locators = block_locators(source)
    assert len(expected_locators) == blocks

    emulator.reset_request_log()
    collection_uuid = printed_uuid(alice.put(str(source)))
    assert len(keep_puts(emulator.request_log())) >= blocks

    collection = emulator.api(user="alice").collections().get(uuid=collection_uuid).execute()
    assert collection["owner_uuid"] == emulator.users["alice"]["uuid"]
    stripped = f". {' '.join(expected_locators)} 0:{size}:payload.bin\n"
    assert collection["portable_data_hash"] == portable_data_hash(stripped)

    for locator in (collection_uuid, collection["portable_data_hash"]):
        fetched = tmp_path / f"fetched-{locator.replace('+', '-')}"
        result = alice.get(f"{locator}/payload.bin", str(fetched))
        assert result.returncode == 0, describe(result)
        assert fetched.stat().st_size == size
        assert sha256_file(fetched) == sha256_file(source)


def test_put_portable_data_hash_output_matches_server(emulator, alice, tmp_path):
    source = random_file(tmp_path / "small.bin", 4096)
    result = alice.put("--portable-data-hash", str(source))
    assert result.returncode == 0, describe(result)
    expected = portable_data_hash(f". {block_locators(source)[0]} 0:4096:small.bin\n")
    assert result.stdout.strip() == expected


def test_put_resume_checks_a_cached_signature_before_reusing_blocks(emulator, alice, tmp_path):
    source = random_file(tmp_path / "resumed.bin", MIB)
    first_uuid = printed_uuid(alice.put(str(source)))

    emulator.reset_request_log()
    second_uuid = printed_uuid(alice.put(str(source)))
    log = emulator.request_log()
    assert second_uuid != first_uuid
    assert keep_puts(log) == []
    assert [entry["status"] for entry in logged_requests(log, "keep", "HEAD")] == [200]
    api = emulator.api(user="alice")
    first, second = (api.collections().get(uuid=uuid).execute() for uuid in (first_uuid, second_uuid))
    assert second["portable_data_hash"] == first["portable_data_hash"]


def test_put_resume_cache_of_another_user_fails_signature_check(emulator, tmp_path):
    source = random_file(tmp_path / "shared-home.bin", MIB)
    alice = UserShell.for_user(emulator, "alice", tmp_path)
    printed_uuid(alice.put(str(source)))

    # bob in alice's HOME finds her resume cache; its locators are signed for her token, not his.
    bob_in_alices_home = UserShell(emulator.env(user="bob"), tmp_path, "alice")
    emulator.reset_request_log()
    result = bob_in_alices_home.put(str(source))
    assert result.returncode == 1, describe(result)
    assert "Resume cache contains invalid signature" in result.stderr
    log = emulator.request_log()
    assert [entry["status"] for entry in logged_requests(log, "keep", "HEAD")] == [400]
    assert keep_puts(log) == []
    assert write_requests(log) == []
