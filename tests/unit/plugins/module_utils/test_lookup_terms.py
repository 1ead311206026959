# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Lookup terms, the reads they need, bare hex and image-id choices (the batched reads run against the emulator in
tests/functional/test_catalog_reads.py)."""

from __future__ import annotations

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._cluster_view import ClusterView
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageRefError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import ImageId
from ansible_collections.arvados.cluster.plugins.module_utils._records import (
    HASH_LINK_CLASS,
    REPO_TAG_LINK_CLASS,
    ImageCollection,
    ImageLink,
    MigrationLink,
    iso_time,
    parse_arvados_time,
    system_user_uuid_of,
)
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import (
    INCOMPATIBLE_ERROR,
    TERM_IMAGE_ID,
    TERM_NAME,
    TERM_PORTABLE_DATA_HASH,
    LookupTerm,
    hash_patterns_to_read,
    link_names_to_read,
    parse_term,
    server_choice,
    server_term,
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
    # Bare hex is a name to the server; it is read as an image id only where the server finds nothing.
    ("0123456789ab", TERM_NAME, "sha256:0123456789ab", None),
    # 32 hex digits are a portable data hash without size to the server, so that is read first.
    ("0123456789abcdef0123456789abcdef", TERM_PORTABLE_DATA_HASH, "sha256:0123456789abcdef0123456789abcdef",
     "0123456789abcdef0123456789abcdef"),
    ("0123456789abcdef0123456789abcdef+45", TERM_PORTABLE_DATA_HASH, None, "0123456789abcdef0123456789abcdef+45"),
    ("0123456789abcdef0123456789abcdef+45+Asig@12345678", TERM_PORTABLE_DATA_HASH, None, "0123456789abcdef0123456789abcdef+45"),
])
def test_lookup_terms_are_classified(text, kind, prefix, pdh):
    term = parse_term(text)
    assert (term.kind, str(term.image_id) if term.image_id else None, term.portable_data_hash) == (kind, prefix, pdh)


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
    with pytest.raises(ImageRefError, match=message):
        parse_term(text)


def test_server_terms_never_set_image_ids_apart():
    assert server_term(f"sha256:{HEX_A}").kind == TERM_NAME
    assert server_term(f"sha256:{HEX_A}").image_id is None
    assert server_term("0123456789ab").kind == TERM_NAME


def test_names_split_at_the_first_colon_as_the_server_does():
    term = parse_term("registry.example:5000/team/bwa")
    assert term.repo_tag_name == "registry.example:5000/team/bwa"
    assert term.hash_name_pattern == "registry.example%"
    assert parse_term("tiny").repo_tag_name == "tiny:latest"


def test_links_to_read_name_both_forms_of_full_ids():
    terms = [parse_term("tiny:1.0"), parse_term(f"sha256:{HEX_A}"), parse_term("sha256:abcd"), parse_term("x")]
    assert link_names_to_read(terms) == sorted(["tiny:1.0", "x:latest", f"sha256:{HEX_A}", HEX_A])


def test_hash_patterns_only_for_names_without_a_readable_tag_and_for_id_prefixes():
    tagged = ImageCollection("zzzzz-4zz18-000000000000001", "p+1", PROJECT, file_names=(v2(HEX_A),))
    trashed = ImageCollection("zzzzz-4zz18-000000000000002", "q+1", PROJECT, file_names=(v2(HEX_A),), is_trashed=True)
    links = [
        _link(REPO_TAG_LINK_CLASS, "tiny:1.0", tagged, second(1)),
        _link(REPO_TAG_LINK_CLASS, "gone:1.0", trashed, second(2)),
    ]
    terms = [parse_term(text) for text in ("tiny:1.0", "gone:1.0", "sha256:abcd", f"sha256:{HEX_A}", "0123456789ab")]
    view = ClusterView(tuple(links), (tagged, trashed), ("v2",))
    assert hash_patterns_to_read(terms, view) == ["0123456789ab%", "abcd%", "gone%", "sha256:0123456789ab%", "sha256:abcd%"]


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
    holder = ImageCollection("zzzzz-4zz18-000000000000001", "p+1", PROJECT, file_names=(v2(HEX_A),))
    view = ClusterView((_link(HASH_LINK_CLASS, name, holder, second(1)),), (holder,), ("v2",))
    assert bool(view.hash_links_for_id(ImageId.from_stored(prefix))) is expected


# Image id choices


def image_id_choice(text, prefix, links, collections, formats, migration_links=()):
    view = ClusterView(tuple(links), tuple(collections), tuple(formats), tuple(migration_links))
    return server_choice(view, LookupTerm(text, TERM_IMAGE_ID, image_id=ImageId.from_stored(prefix)))


def choice_for_term(term, links, collections, formats):
    return server_choice(ClusterView(tuple(links), tuple(collections), tuple(formats)), term)


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
    assert choice_for_term(parse_term("sha256"), links, [coll], ["v2"]).winner.collection == coll
    assert choice_for_term(parse_term(f"sha256:{HEX_B}"), links, [coll], ["v2"]).winner is None
    assert choice_for_term(server_term(f"sha256:{HEX_B}"), links, [coll], ["v2"]).winner.collection == coll


def test_bare_hex_takes_the_servers_answer_first():
    # A repository named like hex resolves through its repo+tag link; a v1 image's bare hex hash link by prefix.
    named = ImageCollection("zzzzz-4zz18-000000000000041", "7" * 32 + "+1", PROJECT, file_names=(v2(HEX_B),))
    v1 = ImageCollection("zzzzz-4zz18-000000000000042", "8" * 32 + "+1", PROJECT, file_names=(f"{HEX_A}.tar",))
    links = [_link(REPO_TAG_LINK_CLASS, f"{HEX_A}:latest", named, second(1)), _link(HASH_LINK_CLASS, HEX_A, v1, second(2))]
    by_tag = choice_for_term(parse_term(HEX_A), links, [named, v1], ["v1", "v2"])
    assert (by_tag.winner.collection, by_tag.matched_by, by_tag.read_as_image_id) == (named, REPO_TAG_LINK_CLASS, False)
    by_v1_link = choice_for_term(parse_term(HEX_A[:12]), links, [named, v1], ["v1", "v2"])
    assert (by_v1_link.winner.collection, by_v1_link.matched_by, by_v1_link.read_as_image_id) == (v1, HASH_LINK_CLASS, False)


def test_bare_hex_is_read_as_an_image_id_only_where_the_server_finds_nothing():
    v2_image = ImageCollection("zzzzz-4zz18-000000000000051", "9" * 32 + "+1", PROJECT, file_names=(v2(HEX_B),))
    links = [_link(HASH_LINK_CLASS, f"sha256:{HEX_B}", v2_image, second(1))]
    by_id = choice_for_term(parse_term(HEX_B[:12]), links, [v2_image], ["v2"])
    assert (by_id.winner.collection, by_id.read_as_image_id) == (v2_image, True)
    nothing = choice_for_term(parse_term("ffffffffffff"), links, [v2_image], ["v2"])
    assert nothing.winner is None and "not found" in nothing.error
