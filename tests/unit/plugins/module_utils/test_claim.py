# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
from __future__ import annotations

import datetime

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._claim import (
    CLAIM_LOCK_PROPERTY,
    CLAIM_TTL_PROPERTY,
    StaleClaims,
    claim_name,
    expiry_after,
    host_lock_identity,
    is_unique_violation,
    poll_interval,
)
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError

IMAGE_ID = "sha256:" + "ab" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def claim(modified_at: str, ttl: object = 10) -> dict:
    return {"uuid": "zzzzz-4zz18-000000000000001", "modified_at": modified_at, "properties": {CLAIM_TTL_PROPERTY: ttl}}


def test_a_claim_unrenewed_for_its_own_ttl_is_stale() -> None:
    clock = Clock()
    stale = StaleClaims(clock)
    assert not stale.is_stale(claim("t1"), default_ttl=300)
    clock.now += 9.9
    assert not stale.is_stale(claim("t1"), default_ttl=300)
    clock.now += 0.1
    assert stale.is_stale(claim("t1"), default_ttl=300)


def test_a_renewed_claim_starts_its_ttl_again() -> None:
    clock = Clock()
    stale = StaleClaims(clock)
    stale.is_stale(claim("t1"), default_ttl=300)
    clock.now += 9
    assert not stale.is_stale(claim("t2"), default_ttl=300)
    clock.now += 9
    assert not stale.is_stale(claim("t2"), default_ttl=300)
    clock.now += 1
    assert stale.is_stale(claim("t2"), default_ttl=300)


@pytest.mark.parametrize("ttl", [None, "soon", 0, -5])
def test_a_claim_without_a_usable_ttl_uses_the_waiting_run_s(ttl: object) -> None:
    clock = Clock()
    stale = StaleClaims(clock)
    stale.is_stale(claim("t1", ttl), default_ttl=30)
    clock.now += 29
    assert not stale.is_stale(claim("t1", ttl), default_ttl=30)
    clock.now += 1
    assert stale.is_stale(claim("t1", ttl), default_ttl=30)


def test_expiry_is_an_arvados_timestamp() -> None:
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert expiry_after(90, now) == "2026-01-02T03:05:35.000000Z"


def test_claim_name_and_poll_interval() -> None:
    assert claim_name(IMAGE_ID) == f"arvados.cluster upload claim {IMAGE_ID}"
    assert [poll_interval(ttl) for ttl in (1, 4, 300)] == [0.1, 0.4, 2.0]


def test_only_the_unique_name_rule_means_claimed() -> None:
    message = 'answered 422: PG::UniqueViolation: duplicate key value violates unique constraint "index_collections_on_owner_uuid_and_name"'
    assert is_unique_violation(ArvadosClientError(message, status=422))
    assert not is_unique_violation(ArvadosClientError("answered 422: Name cannot contain a '/' character", status=422))
    assert not is_unique_violation(ArvadosClientError(message, status=500))


def test_a_claim_made_under_this_run_s_host_lock_is_stale_at_once(tmp_path) -> None:
    identity = host_lock_identity(str(tmp_path / "locks"))
    assert identity == host_lock_identity(str(tmp_path / "locks")) != host_lock_identity(str(tmp_path / "other"))
    stale = StaleClaims(Clock(), lock_identity=identity)
    mine = {**claim("t1"), "properties": {CLAIM_TTL_PROPERTY: 300, CLAIM_LOCK_PROPERTY: identity}}
    theirs = {**claim("t1"), "properties": {CLAIM_TTL_PROPERTY: 300, CLAIM_LOCK_PROPERTY: "another host"}}
    assert stale.is_stale(mine, default_ttl=300)
    assert not stale.is_stale(theirs, default_ttl=300)
