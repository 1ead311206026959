# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Lookup terms, the reads they need, and image-id choices (the batched reads run against the emulator in
tests/functional/test_catalog_reads.py)."""

from __future__ import annotations

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._catalog import (
    HASH_LINK_CLASS,
    INCOMPATIBLE_ERROR,
    REPO_TAG_LINK_CLASS,
    TERM_IMAGE_ID,
    TERM_NAME,
    TERM_PORTABLE_DATA_HASH,
    ImageCollection,
    ImageLink,
    MigrationLink,
    choice_for_term,
    hash_patterns_to_read,
    image_id_choice,
    iso_time,
    link_names_to_read,
    lookup_term,
    names_image_id,
    parse_arvados_time,
    server_choice,
    server_term,
    system_user_uuid_of,
)

SYSTEM_USER = "zzzzz-tpzed-000000000000000"
PROJECT = "zzzzz-j7d0g-000000000000001"
OTHER_PROJECT = "zzzzz-j7d0g-000000000000002"
HEX_A = "a" * 64
HEX_B = "ab" + "0" * 62


def v2(hex_digits):
    return f"sha256:{hex_digits}.tar"


def second(n):
    return f"2026-02-01T00:{n // 60:02d}:{n % 60:02d}.250000000Z"


# Terms

@pytest.mark.parametrize("text, kind, prefix, pdh", [
    ("tiny:1.0", TERM_NAME, None, None),
    ("tiny", TERM_NAME, None, None),
    ("registry.example:5000/team/bwa", TERM_NAME, None, None),
    ("sha256", TERM_NAME, None, None),
    ("0123456789a", TERM_NAME, None, None),  # 11 hex digits: a repository name
    ("0123456789ab:1.0", TERM_NAME, None, None),
    ("sha256:abcd", TERM_IMAGE_ID, "sha256:abcd", None),
    (f"sha256:{HEX_A}", TERM_IMAGE_ID, f"sha256:{HEX_A}", None),
    ("0123456789ab", TERM_IMAGE_ID, "sha256:0123456789ab", None),
    ("0123456789abcdef0123456789abcdef", TERM_IMAGE_ID, "sha256:0123456789abcdef0123456789abcdef", None),
    ("0123456789abcdef0123456789abcdef+45", TERM_PORTABLE_DATA_HASH, None, "0123456789abcdef0123456789abcdef+45"),
    ("0123456789abcdef0123456789abcdef+45+Asig@12345678", TERM_PORTABLE_DATA_HASH, None, "0123456789abcdef0123456789abcdef+45"),
])
def test_lookup_terms_are_classified(text, kind, prefix, pdh):
    term = lookup_term(text)
    assert (term.kind, term.image_id_prefix, term.portable_data_hash) == (kind, prefix, pdh)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("tiny 1.0", "whitespace"),
    (" tiny", "whitespace"),
    (None, "not a string"),
    (12, "not a string"),
    ("sha256:xyz", "not an image id"),
    ("sha256:ABCD", "not an image id"),
    ("sha256:abc", "not an image id"),
    (f"sha256:{HEX_A}0", "not an image id"),
])
def test_bad_terms_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        lookup_term(text)


def test_server_terms_never_set_image_ids_apart():
    assert server_term(f"sha256:{HEX_A}").kind == TERM_NAME
    assert server_term("0123456789ab").kind == TERM_NAME


def test_names_split_at_the_first_colon_as_the_server_does():
    term = lookup_term("registry.example:5000/team/bwa")
    assert term.repo_tag_name == "registry.example:5000/team/bwa"
    assert term.hash_name_pattern == "registry.example%"
    assert lookup_term("tiny").repo_tag_name == "tiny:latest"


def test_links_to_read_name_both_forms_of_full_ids():
    terms = [lookup_term("tiny:1.0"), lookup_term(f"sha256:{HEX_A}"), lookup_term("sha256:abcd"), lookup_term("x")]
    assert link_names_to_read(terms) == sorted(["tiny:1.0", "x:latest", f"sha256:{HEX_A}", HEX_A])


def test_hash_patterns_only_for_names_without_a_readable_tag_and_for_id_prefixes():
    tagged = ImageCollection("zzzzz-4zz18-000000000000001", "p+1", PROJECT, file_names=(v2(HEX_A),))
    trashed = ImageCollection("zzzzz-4zz18-000000000000002", "q+1", PROJECT, file_names=(v2(HEX_A),), is_trashed=True)
    links = [
        _link(REPO_TAG_LINK_CLASS, "tiny:1.0", tagged, second(1)),
        _link(REPO_TAG_LINK_CLASS, "gone:1.0", trashed, second(2)),
    ]
    terms = [lookup_term(text) for text in ("tiny:1.0", "gone:1.0", "sha256:abcd", f"sha256:{HEX_A}")]
    assert hash_patterns_to_read(terms, links, [tagged, trashed]) == ["abcd%", "gone%", "sha256:abcd%"]


def test_system_user_and_times():
    assert system_user_uuid_of({"uuidPrefix": "x1y2z"}) == "x1y2z-tpzed-000000000000000"
    assert system_user_uuid_of({}) is None
    assert iso_time(parse_arvados_time("2026-11-26T21:56:41.123456789+02:00")) == "2026-11-26T19:56:41.123456Z"
    assert iso_time(None) is None


@pytest.mark.parametrize("name, prefix, expected", [
    (f"sha256:{HEX_A}", "sha256:aaaa", True),
    (HEX_A, "sha256:aaaa", True),
    (f"sha256:{HEX_B}", "sha256:aaaa", False),
    ("sha256", "sha256:aaaa", False),
    ("aaaa-not-an-id", "sha256:aaaa", False),
])
def test_hash_link_names_match_ids_in_both_forms(name, prefix, expected):
    assert names_image_id(name, prefix) is expected


# Image id choices

_LINK_SERIALS = iter(range(1, 10 ** 6))


def _link(link_class, name, coll, created_at, image_timestamp=None, owner_uuid=PROJECT):
    return ImageLink.from_api({
        "uuid": f"zzzzz-o0j2j-{next(_LINK_SERIALS):015d}", "link_class": link_class, "name": name, "head_uuid": coll.uuid,
        "owner_uuid": owner_uuid, "created_at": created_at,
        "properties": {"image_timestamp": image_timestamp} if image_timestamp else {},
    })


def test_image_id_choice_orders_holders_as_the_server_orders_candidates():
    older = ImageCollection("zzzzz-4zz18-000000000000011", "1" * 32 + "+1", PROJECT, file_names=(v2(HEX_A),))
    newer = ImageCollection("zzzzz-4zz18-000000000000012", "2" * 32 + "+1", OTHER_PROJECT, file_names=(v2(HEX_A),))
    other = ImageCollection("zzzzz-4zz18-000000000000013", "3" * 32 + "+1", PROJECT, file_names=(v2(HEX_B),))
    links = [
        _link(HASH_LINK_CLASS, f"sha256:{HEX_A}", older, second(1), "2025-01-01T00:00:00Z"),
        _link(HASH_LINK_CLASS, f"sha256:{HEX_A}", newer, second(5), "2025-01-01T00:00:00Z"),
        _link(HASH_LINK_CLASS, f"sha256:{HEX_B}", other, second(9), "2026-01-01T00:00:00Z"),
    ]
    choice = image_id_choice(f"sha256:{HEX_A}", f"sha256:{HEX_A}", links, [older, newer, other], ["v2"])
    assert [c.collection.uuid for c in choice.candidates] == [newer.uuid, older.uuid]
    assert choice.matched_by == HASH_LINK_CLASS
    prefix_choice = image_id_choice("sha256:a", "sha256:a", links, [older, newer, other], ["v2"])
    assert [c.collection.uuid for c in prefix_choice.candidates] == [other.uuid, newer.uuid, older.uuid]


def test_image_id_choice_finds_v1_hash_links_and_keeps_format_rules():
    v1 = ImageCollection("zzzzz-4zz18-000000000000021", "4" * 32 + "+1", PROJECT, file_names=(f"{HEX_A}.tar",))
    links = [_link(HASH_LINK_CLASS, HEX_A, v1, second(1))]
    assert image_id_choice("aaaaaaaaaaaa", "sha256:aaaaaaaaaaaa", links, [v1], ["v1", "v2"]).winner.collection == v1
    refused = image_id_choice("aaaaaaaaaaaa", "sha256:aaaaaaaaaaaa", links, [v1], ["v2"])
    assert refused.winner is None and refused.error == INCOMPATIBLE_ERROR
    migrated_to = ImageCollection("zzzzz-4zz18-000000000000022", "5" * 32 + "+1", PROJECT, file_names=(v2(HEX_B),))
    migration = MigrationLink("zzzzz-o0j2j-migration000001", SYSTEM_USER, v1.portable_data_hash,
                              migrated_to.portable_data_hash, parse_arvados_time(second(3)))
    followed = image_id_choice("aaaaaaaaaaaa", "sha256:aaaaaaaaaaaa", links, [v1, migrated_to], ["v2"], [migration])
    assert followed.winner.collection == migrated_to and followed.winner.migrated_from == v1


def test_image_id_that_nothing_holds_is_not_found():
    choice = image_id_choice("sha256:abcd", "sha256:abcd", [], [], ["v2"])
    assert choice.winner is None and "not found" in choice.error


def test_choice_for_term_keeps_the_server_rule_for_names():
    coll = ImageCollection("zzzzz-4zz18-000000000000031", "6" * 32 + "+1", PROJECT, file_names=(v2(HEX_A),))
    links = [_link(HASH_LINK_CLASS, f"sha256:{HEX_A}", coll, second(1), "2025-01-01T00:00:00Z")]
    # `sha256` alone falls back to every hash link; as an image id term, `sha256:<hex>` names one image.
    assert choice_for_term(lookup_term("sha256"), links, [coll], ["v2"]).winner.collection == coll
    assert choice_for_term(lookup_term(f"sha256:{HEX_B}"), links, [coll], ["v2"]).winner is None
    assert server_choice(f"sha256:{HEX_B}", links, [coll], ["v2"]).winner.collection == coll
