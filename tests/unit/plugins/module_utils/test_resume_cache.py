# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Which cached signed locators an interrupted upload may offer Keep again, and where the cache lives."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._resume_cache import (
    EXPIRY_MARGIN_SECONDS,
    ResumeCache,
    block_key,
    cache_file_name,
    cache_folder,
    usable_entries,
)

BLOCK = "0123456789abcdef0123456789abcdef+67108864"
SIGNATURE = "a" * 40
NOW = 1_800_000_000


def signed(expiry: int, block: str = BLOCK) -> str:
    return f"{block}+A{SIGNATURE}@{expiry:08x}"


@pytest.mark.parametrize("locator, expected", [
    (signed(NOW), (BLOCK, NOW)),
    (f"{BLOCK}+K@zzzzz+A{SIGNATURE}@{NOW:08x}", (BLOCK, NOW)),
    (BLOCK, None),
    (f"{BLOCK}+A{SIGNATURE}", None),
    (f"{BLOCK}+Abad@{NOW:08x}", None),
])
def test_block_key(locator, expected):
    assert block_key(locator) == expected


def test_only_well_formed_entries_far_from_expiry_are_used():
    fresh, near, expired = (signed(NOW + EXPIRY_MARGIN_SECONDS + 60), signed(NOW + 60), signed(NOW - 60))
    other_block = "f" * 32 + "+3"
    entries = {BLOCK: fresh, "near": near, other_block: signed(NOW - 60, other_block), "wrong key": fresh, "bad": 3}
    assert usable_entries(entries, NOW) == {BLOCK: fresh}
    assert usable_entries({BLOCK: near}, NOW) == usable_entries({BLOCK: expired}, NOW) == {}


@pytest.mark.parametrize("entries", [None, [], "blocks", 3])
def test_a_cache_of_another_shape_is_empty(entries):
    assert usable_entries(entries, NOW) == {}


def test_cache_files_differ_per_cluster_token_and_image_and_name_none_of_them():
    token = "v2/zzzzz-gj3su-000000000000000/secret"
    names = {cache_file_name(host, secret, image) for host in ("a.example", "b.example") for secret in (token, "other")
             for image in ("sha256:" + "1" * 64, "sha256:" + "2" * 64)}
    assert len(names) == 8
    assert not [name for name in names if "secret" in name or "example" in name or "111" in name]


def test_cache_folder_follows_xdg_then_home():
    assert cache_folder({"XDG_CACHE_HOME": "/x/cache"}) == "/x/cache/arvados-cluster/uploads"
    assert cache_folder({}).endswith("/.cache/arvados-cluster/uploads")


def test_only_blocks_an_earlier_run_wrote_are_looked_up(tmp_path):
    """Blocks this run writes are kept for a later run, not looked up again (each lookup is an MD5 of the block)."""
    block = b"image bytes"
    locator = signed(NOW + 2 * EXPIRY_MARGIN_SECONDS, f"{hashlib.md5(block).hexdigest()}+{len(block)}")
    path = str(tmp_path / "upload.json")
    this_run = ResumeCache(path, now=lambda: NOW)
    this_run.remember(locator)
    assert this_run.cached(block) is None
    later_run = ResumeCache(path, now=lambda: NOW)
    assert later_run.cached(block) == locator
    assert later_run.cached(b"other bytes") is None
    later_run.forget()
    assert later_run.cached(block) is None
    assert ResumeCache(path, now=lambda: NOW).cached(block) is None
