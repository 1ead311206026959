# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

import datetime

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._cluster_view import (
    ClusterView,
    image_file_pattern,
    image_id_of,
    sql_like_matches,
)
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import same_image
from ansible_collections.arvados.cluster.plugins.module_utils._image_report import (
    AMBIGUOUS,
    OTHER_IMAGE,
    RESOLVES,
    UNRESOLVABLE,
    Resolution,
)
from ansible_collections.arvados.cluster.plugins.module_utils._records import (
    HASH_LINK_CLASS,
    REPO_TAG_LINK_CLASS,
    ImageCollection,
    ImageLink,
    MigrationLink,
    keep_locator,
    manifest_file_names,
    parse_arvados_time,
    parse_image_timestamp,
    whole_seconds,
)
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import (
    MATCHED_BY_PORTABLE_DATA_HASH,
    TERM_NAME,
    LookupTerm,
    keying_links,
    order_links,
    server_choice,
    server_preference_key,
    server_term,
)

UTC = datetime.timezone.utc
SYSTEM_USER = "zzzzz-tpzed-000000000000000"
PROJECT = "zzzzz-j7d0g-000000000000001"
BLOCK = "0123456789abcdef0123456789abcdef+1024"


def hex_id(char):
    return char * 64


def image_id(char):
    return "sha256:" + hex_id(char)


def collection(name, file_names=None, **kwargs):
    """A collection `zzzzz-4zz18-<name>`; by default it holds the v2 image named by `name[0]`."""
    kwargs.setdefault("portable_data_hash", f"{name[0] * 32}+{len(name)}")
    kwargs.setdefault("owner_uuid", PROJECT)
    if file_names is None:
        file_names = (f"{image_id(name[0])}.tar",)
    return ImageCollection(uuid=f"zzzzz-4zz18-{name:0>15}", file_names=tuple(file_names), **kwargs)


_link_serial = [0]


def link(coll, created_at, image_timestamp=None, name="tiny:1.0", link_class=REPO_TAG_LINK_CLASS):
    """A link on `coll`; times as Arvados writes them."""
    _link_serial[0] += 1
    api_link = {
        "uuid": f"zzzzz-o0j2j-{_link_serial[0]:0>15}", "link_class": link_class, "name": name,
        "head_uuid": coll.uuid, "owner_uuid": PROJECT, "created_at": created_at,
        "properties": {} if image_timestamp is None else {"image_timestamp": image_timestamp},
    }
    return ImageLink.from_api(api_link)


def hash_link(coll, created_at, image_timestamp=None):
    return link(coll, created_at, image_timestamp, name=image_id_of(coll), link_class=HASH_LINK_CLASS)


def migration(tail, head, created_at="2026-01-01T00:00:00Z", owner_uuid=SYSTEM_USER):
    return MigrationLink(
        uuid="zzzzz-o0j2j-migration000001", owner_uuid=owner_uuid, tail_uuid=tail.portable_data_hash,
        head_uuid=head.portable_data_hash, created_at=parse_arvados_time(created_at),
    )


def choose(container_image, links, collections, formats, migration_links=(), system_user_uuid=None):
    """The server's choice for `container_image` over these records, read strictly by the server's rules."""
    view = ClusterView(tuple(links), tuple(collections), tuple(formats), tuple(migration_links), system_user_uuid)
    term = server_term(container_image)
    if term.kind == TERM_NAME:
        term = LookupTerm(container_image, TERM_NAME)
    return server_choice(view, term)


def resolve(repo_tag, image_id_text, links, collections, formats):
    return Resolution(repo_tag, image_id_text, choose(repo_tag, links, collections, formats))


def winner_uuid(container_image, links, collections, formats=("v2",), **kwargs):
    choice = choose(container_image, links, collections, formats, **kwargs)
    return None if choice.winner is None else choice.winner.collection.uuid


# Timestamps

@pytest.mark.parametrize("text, expected", [
    ("2026-11-26T19:56:41.294780000Z", datetime.datetime(2026, 11, 26, 19, 56, 41, 294780, tzinfo=UTC)),
    ("2026-11-26T19:56:41.294780999Z", datetime.datetime(2026, 11, 26, 19, 56, 41, 294780, tzinfo=UTC)),
    ("2026-11-26T19:56:41.5Z", datetime.datetime(2026, 11, 26, 19, 56, 41, 500000, tzinfo=UTC)),
    ("2026-11-26T19:56:41Z", datetime.datetime(2026, 11, 26, 19, 56, 41, tzinfo=UTC)),
    ("2026-11-26T19:56:41", datetime.datetime(2026, 11, 26, 19, 56, 41, tzinfo=UTC)),
    ("2026-11-26 19:56:41.1+00:00", datetime.datetime(2026, 11, 26, 19, 56, 41, 100000, tzinfo=UTC)),
    ("2026-11-26T21:56:41.123456789+02:00", datetime.datetime(2026, 11, 26, 19, 56, 41, 123456, tzinfo=UTC)),
    ("2026-11-26T14:26:41-0530", datetime.datetime(2026, 11, 26, 19, 56, 41, tzinfo=UTC)),
    ("2026-11-26", datetime.datetime(2026, 11, 26, tzinfo=UTC)),
])
def test_parse_arvados_time(text, expected):
    parsed = parse_arvados_time(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-26T19:56:41ZZ", None, 1700000000])
def test_parse_arvados_time_rejects(text):
    with pytest.raises(ValueError):
        parse_arvados_time(text)


@pytest.mark.parametrize("value", [None, "", "not a time", 1700000000, {"created": "x"}])
def test_unreadable_image_timestamp_is_none(value):
    assert parse_image_timestamp(value) is None


@pytest.mark.parametrize("text, seconds", [
    ("1970-01-01T00:00:00Z", 0),
    ("1970-01-01T00:00:01.999999999Z", 1),
    ("1969-12-31T23:59:59.5Z", -1),
    ("2026-11-26T19:56:41.9Z", 1795723001),  # date -u -d 2026-11-26T19:56:41Z +%s
])
def test_whole_seconds_rounds_down(text, seconds):
    assert whole_seconds(parse_arvados_time(text)) == seconds


# Data from API responses

def test_link_from_api():
    api_link = {
        "uuid": "zzzzz-o0j2j-000000000000001", "link_class": REPO_TAG_LINK_CLASS,
        "name": "registry.example:5000/team/bwa:0.7.17", "head_uuid": "zzzzz-4zz18-000000000000001",
        "owner_uuid": PROJECT, "created_at": "2026-11-26T19:56:41.294780000Z",
        "properties": {"image_timestamp": "2026-01-02T03:04:05.123456789Z"},
    }
    parsed = ImageLink.from_api(api_link)
    assert parsed.created_at == datetime.datetime(2026, 11, 26, 19, 56, 41, 294780, tzinfo=UTC)
    assert parsed.image_timestamp == datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert (parsed.repo, parsed.tag) == ("registry.example:5000/team/bwa", "0.7.17")
    assert parsed.properties["image_timestamp"] == "2026-01-02T03:04:05.123456789Z"
    hash_parsed = ImageLink.from_api(dict(api_link, link_class=HASH_LINK_CLASS, name=image_id("a"), properties=None))
    assert (hash_parsed.repo, hash_parsed.tag, hash_parsed.image_timestamp) == (None, None, None)


def test_collection_from_api_reads_manifest():
    api_collection = {
        "uuid": "zzzzz-4zz18-000000000000001", "portable_data_hash": "a" * 32 + "+90", "owner_uuid": PROJECT,
        "name": "Docker image tiny:1.0 sha256:aaaaa", "is_trashed": False,
        "properties": {"docker-image-repo-tag": "tiny:1.0"},
        "manifest_text": f". {BLOCK}+Aabc@12345678 0:1024:{image_id('a')}.tar\n",
    }
    parsed = ImageCollection.from_api(api_collection)
    assert parsed.file_names == (f"{image_id('a')}.tar",)
    assert image_id_of(parsed) == image_id("a")
    assert ImageCollection.from_api(dict(api_collection, is_trashed=True)).is_trashed


@pytest.mark.parametrize("manifest_text, file_names", [
    ("", ()),
    (f". {BLOCK} 0:1024:a.tar\n", ("a.tar",)),
    (f". {BLOCK} {BLOCK} 0:1024:a.tar 1024:1024:a.tar\n", ("a.tar",)),
    (f". {BLOCK} 0:10:a 10:10:b\n./sub {BLOCK} 0:5:c\n", ("a", "b", "sub/c")),
    (f". {BLOCK} 0:10:dir/x.tar\n", ("dir/x.tar",)),
    (
        f". {BLOCK} 0:10:with\\040space 0:1:caf\\303\\251 0:1:back\\\\slash\n",
        ("with space", "caf\u00e9", "back\\slash"),
    ),
    (f"./empty {BLOCK} 0:0:.\n. {BLOCK} 0:10:a\n", ("a",)),
    ("\n\n", ()),
])
def test_manifest_file_names(manifest_text, file_names):
    assert manifest_file_names(manifest_text) == file_names


# Formats

V1_NAME = hex_id("b") + ".tar"
V2_NAME = image_id("a") + ".tar"


@pytest.mark.parametrize("formats, v1_kept, v2_kept", [
    (["v2"], False, True),
    (["v1"], True, False),
    (["v1", "v2"], True, True),
    (["v2", "v3"], False, True),
])
def test_image_file_pattern(formats, v1_kept, v2_kept):
    pattern = image_file_pattern(formats)
    assert bool(pattern.fullmatch(V1_NAME)) is v1_kept
    assert bool(pattern.fullmatch(V2_NAME)) is v2_kept


@pytest.mark.parametrize("formats", [[], ["v3"]])
def test_unrecognised_formats(formats):
    with pytest.raises(ValueError, match="Unrecognized configuration for docker_image_formats"):
        image_file_pattern(formats)


@pytest.mark.parametrize("file_names, expected", [
    ((V2_NAME,), image_id("a")),
    ((V1_NAME,), hex_id("b")),
    (("sub/" + V2_NAME,), image_id("a")),
    ((V2_NAME, "README"), None),
    ((), None),
    (("sha256:abc.tar",), None),
    ((V2_NAME + ".gz",), None),
])
def test_image_id_of(file_names, expected):
    holder = collection("a", file_names=file_names)
    assert image_id_of(holder) == expected


# The server's order (DESIGN section 1)

def test_retagged_older_image_does_not_win():
    built_later = collection("a")
    built_earlier = collection("b")
    links = [
        link(built_later, "2026-02-01T00:00:00Z", image_timestamp="2026-01-20T00:00:00Z"),
        link(built_earlier, "2026-06-01T00:00:00Z", image_timestamp="2025-05-01T00:00:00Z"),
    ]
    assert winner_uuid("tiny:1.0", links, [built_later, built_earlier]) == built_later.uuid


def test_newer_link_created_at_breaks_equal_image_timestamps():
    first = collection("a")
    second = collection("b")
    links = [
        link(first, "2026-02-01T00:00:00Z", image_timestamp="2026-01-20T00:00:00Z"),
        link(second, "2026-02-01T00:00:01Z", image_timestamp="2026-01-20T00:00:00Z"),
    ]
    assert winner_uuid("tiny:1.0", links, [first, second]) == second.uuid


def test_image_timestamps_compare_in_whole_seconds():
    # b's image was built 0.8 s later, within the same second: the link's created_at decides.
    a = collection("a")
    b = collection("b")
    links = [
        link(a, "2026-02-01T00:00:05Z", image_timestamp="2026-01-20T00:00:00.100Z"),
        link(b, "2026-02-01T00:00:01Z", image_timestamp="2026-01-20T00:00:00.900Z"),
    ]
    assert winner_uuid("tiny:1.0", links, [a, b]) == a.uuid


def test_full_tie_in_whole_seconds_is_reported():
    a = collection("a")
    b = collection("b")
    links = [
        link(a, "2026-02-01T00:00:00.900Z", image_timestamp="2026-01-20T00:00:00.100Z"),
        link(b, "2026-02-01T00:00:00.100Z", image_timestamp="2026-01-20T00:00:00.900Z"),
    ]
    choice = choose("tiny:1.0", links, [b, a], ["v2"])
    assert choice.winner.collection.uuid == a.uuid  # ties broken by uuid, for repeatable answers
    assert [candidate.collection.uuid for candidate in choice.tied_with_winner] == [b.uuid]


def test_same_content_tie_is_not_ambiguous():
    a = collection("a")
    a_copy = collection("a2", portable_data_hash=a.portable_data_hash)
    links = [
        link(a, "2026-02-01T00:00:00Z", "2026-01-20T00:00:00Z"),
        link(a_copy, "2026-02-01T00:00:00Z", "2026-01-20T00:00:00Z"),
    ]
    assert choose("tiny:1.0", links, [a, a_copy], ["v2"]).tied_with_winner == ()


def test_collection_is_keyed_by_its_oldest_matching_link():
    # A newer upload of tag onto `a` does not lift it above `b`: the server keys `a` by its first link.
    a = collection("a")
    b = collection("b")
    links = [
        link(a, "2026-01-01T00:00:00Z", image_timestamp="2026-01-01T00:00:00Z"),
        link(b, "2026-03-01T00:00:00Z", image_timestamp="2026-01-01T00:00:00Z"),
        link(a, "2026-05-01T00:00:00Z", image_timestamp="2026-01-01T00:00:00Z"),
    ]
    assert winner_uuid("tiny:1.0", links, [a, b]) == b.uuid


def test_oldest_link_without_timestamp_sinks_its_collection():
    a = collection("a")
    b = collection("b")
    links = [
        link(a, "2026-01-01T00:00:00Z"),
        link(a, "2026-05-01T00:00:00Z", image_timestamp="2026-04-01T00:00:00Z"),
        link(b, "2026-03-01T00:00:00Z", image_timestamp="2025-01-01T00:00:00Z"),
    ]
    assert winner_uuid("tiny:1.0", links, [a, b]) == b.uuid


def test_keying_link_is_oldest_at_full_precision():
    a = collection("a")
    older = link(a, "2026-01-01T00:00:00.100Z", image_timestamp="2026-01-01T00:00:00Z")
    newer = link(a, "2026-01-01T00:00:00.200Z")
    assert keying_links([newer, older]) == {a.uuid: older}


@pytest.mark.parametrize("without_timestamp_created, with_timestamp", [
    ("2026-06-01T00:00:00Z", "2020-01-01T00:00:00Z"),
    ("2026-06-01T00:00:00Z", "1970-01-01T00:00:01Z"),
])
def test_links_without_timestamp_come_last(without_timestamp_created, with_timestamp):
    no_timestamp = collection("a")
    timestamped = collection("b")
    links = [
        link(no_timestamp, without_timestamp_created),
        link(timestamped, "2026-01-01T00:00:00Z", image_timestamp=with_timestamp),
    ]
    assert winner_uuid("tiny:1.0", links, [no_timestamp, timestamped]) == timestamped.uuid


def test_epoch_timestamp_counts_as_none_and_year_one_sorts_last():
    # The server's key is -to_i or 0: the epoch ties with no timestamp, Docker's zero time sorts after it.
    epoch = collection("a")
    missing = collection("b")
    zero_time = collection("c")
    links = [
        link(epoch, "2026-01-01T00:00:00Z", image_timestamp="1970-01-01T00:00:00Z"),
        link(missing, "2026-01-02T00:00:00Z"),
        link(zero_time, "2026-01-03T00:00:00Z", image_timestamp="0001-01-01T00:00:00Z"),
    ]
    ordered = order_links(ClusterView(tuple(links), (epoch, missing, zero_time)), links)
    assert [collection.uuid for collection, _link in ordered] == [missing.uuid, epoch.uuid, zero_time.uuid]


def test_unreadable_image_timestamp_counts_as_none():
    garbage = collection("a")
    missing = collection("b")
    links = [link(garbage, "2026-01-02T00:00:00Z", image_timestamp="soon"), link(missing, "2026-01-01T00:00:00Z")]
    assert server_preference_key(links[0])[0] == 0
    assert winner_uuid("tiny:1.0", links, [garbage, missing]) == garbage.uuid


# Formats and migrations in the choice

@pytest.mark.parametrize("formats, expected", [
    (["v2"], "v2"),
    (["v1"], "v1"),
    (["v1", "v2"], "v1"),
])
def test_formats_filter_candidates(formats, expected):
    v1 = collection("b", file_names=[V1_NAME])
    v2 = collection("a")
    links = [
        link(v1, "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z"),
        link(v2, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ]
    expected_uuid = {"v1": v1.uuid, "v2": v2.uuid}[expected]
    assert winner_uuid("tiny:1.0", links, [v1, v2], formats) == expected_uuid


def test_collection_with_more_files_is_not_an_image():
    extra_file = collection("a", file_names=[V2_NAME, "notes.txt"])
    single = collection("b")
    links = [
        link(extra_file, "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z"),
        link(single, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ]
    assert winner_uuid("tiny:1.0", links, [extra_file, single]) == single.uuid


def test_only_incompatible_matches_is_the_servers_error():
    v1 = collection("b", file_names=[V1_NAME])
    choice = choose("tiny:1.0", [link(v1, "2026-01-01T00:00:00Z")], [v1], ["v2"])
    assert choice.winner is None
    assert choice.matched_by == REPO_TAG_LINK_CLASS
    assert choice.error == "Matching Docker image is incompatible with 'docker_image_formats' configuration."


def test_unrecognised_formats_refuse_everything():
    a = collection("a")
    choice = choose(a.portable_data_hash, [], [a], [])
    assert choice.winner is None
    assert "Unrecognized configuration" in choice.error


def test_migration_link_redirects_incompatible_image():
    v1 = collection("b", file_names=[V1_NAME])
    v2 = collection("a")
    links = [link(v1, "2026-01-01T00:00:00Z")]
    choice = choose("tiny:1.0", links, [v1, v2], ["v2"], migration_links=[migration(v1, v2)])
    winner = choice.winner
    assert (winner.collection.uuid, winner.migrated_from.uuid, winner.image_id) == (v2.uuid, v1.uuid, image_id("a"))
    assert winner.link.head_uuid == v1.uuid


def test_migration_link_not_owned_by_system_user_is_ignored():
    v1 = collection("b", file_names=[V1_NAME])
    v2 = collection("a")
    not_system = migration(v1, v2, owner_uuid="zzzzz-tpzed-000000000000001")
    links = [link(v1, "2026-01-01T00:00:00Z")]
    assert winner_uuid("tiny:1.0", links, [v1, v2], migration_links=[not_system]) is None
    other_cluster = "yyyyy-tpzed-000000000000000"
    from_other_cluster = winner_uuid(
        "tiny:1.0", links, [v1, v2], migration_links=[migration(v1, v2)], system_user_uuid=other_cluster
    )
    assert from_other_cluster is None


def test_migration_target_must_be_readable_and_compatible():
    v1 = collection("b", file_names=[V1_NAME])
    v2 = collection("a")
    other_v1 = collection("c", file_names=[hex_id("c") + ".tar"])
    tag_link = link(v1, "2026-01-01T00:00:00Z")
    assert winner_uuid("tiny:1.0", [tag_link], [v1], migration_links=[migration(v1, v2)]) is None
    assert winner_uuid("tiny:1.0", [tag_link], [v1, other_v1], migration_links=[migration(v1, other_v1)]) is None


def test_newest_migration_link_wins():
    v1 = collection("b", file_names=[V1_NAME])
    old_target = collection("a")
    new_target = collection("d")
    links = [link(v1, "2026-01-01T00:00:00Z")]
    migrations = [
        migration(v1, new_target, "2026-03-01T00:00:00Z"),
        migration(v1, old_target, "2026-02-01T00:00:00Z"),
    ]
    assert winner_uuid("tiny:1.0", links, [v1, old_target, new_target], migration_links=migrations) == new_target.uuid


def test_compatible_image_ignores_its_migration_link():
    v2 = collection("a")
    other = collection("d")
    links = [link(v2, "2026-01-01T00:00:00Z")]
    assert winner_uuid("tiny:1.0", links, [v2, other], migration_links=[migration(v2, other)]) == v2.uuid


# How the server splits and searches

def test_image_id_term_falls_back_to_newest_hash_link_of_any_id():
    asked_for = collection("a")
    newer_other = collection("b")
    links = [
        hash_link(asked_for, "2026-01-01T00:00:00Z", image_timestamp="2026-01-01T00:00:00Z"),
        hash_link(newer_other, "2026-01-01T00:00:00Z", image_timestamp="2026-02-01T00:00:00Z"),
        link(asked_for, "2026-01-01T00:00:00Z", image_timestamp="2026-01-01T00:00:00Z"),
    ]
    choice = choose(image_id("a"), links, [asked_for, newer_other], ["v2"])
    assert choice.matched_by == HASH_LINK_CLASS
    assert choice.winner.collection.uuid == newer_other.uuid
    assert choice.winner.image_id == image_id("b")
    assert (choice.winner.repo, choice.winner.tag) == (None, None)


@pytest.mark.parametrize("container_image", [hex_id("a"), "aaaaaaaaaaaa", "aaaaaaaaaaaa:latest"])
def test_bare_hex_finds_nothing(container_image):
    a = collection("a")
    links = [hash_link(a, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")]
    choice = choose(container_image, links, [a], ["v2"])
    assert choice.winner is None
    assert choice.error == f'docker image "{container_image}" not found'


def test_registry_port_without_tag_never_resolves():
    a = collection("a")
    links = [link(a, "2026-01-01T00:00:00Z", name="registry.example:5000/team/bwa:latest")]
    assert winner_uuid("registry.example:5000/team/bwa", links, [a]) is None
    assert winner_uuid("registry.example:5000/team/bwa:latest", links, [a]) == a.uuid


def test_repo_tag_links_take_precedence_over_hash_links():
    tagged = collection("a")
    newer_hash_only = collection("s")
    links = [
        link(tagged, "2026-01-01T00:00:00Z", "2025-01-01T00:00:00Z", name="sha256:latest"),
        hash_link(newer_hash_only, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ]
    choice = choose("sha256", links, [tagged, newer_hash_only], ["v2"])
    assert (choice.matched_by, choice.winner.collection.uuid) == (REPO_TAG_LINK_CLASS, tagged.uuid)


def test_links_on_unreadable_or_trashed_collections_do_not_count():
    trashed = collection("a", is_trashed=True)
    unreadable = collection("b")
    readable_hash = collection("c")
    links = [
        link(trashed, "2026-01-01T00:00:00Z", name="tiny:1.0"),
        link(unreadable, "2026-01-01T00:00:00Z", name="tiny:1.0"),
        hash_link(readable_hash, "2026-01-01T00:00:00Z"),
    ]
    # No usable repo+tag link: the server falls back to hash links LIKE 'tiny%', which finds none.
    choice = choose("tiny:1.0", links, [trashed, readable_hash], ["v2"])
    assert (choice.matched_by, choice.winner) == (None, None)


def test_empty_term_matches_every_hash_link():
    a = collection("a")
    b = collection("b")
    links = [
        hash_link(a, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        hash_link(b, "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"),
    ]
    assert winner_uuid(":anything", links, [a, b]) == b.uuid


@pytest.mark.parametrize("pattern, text, expected", [
    ("sha256%", image_id("a"), True),
    ("sha256:aa%", image_id("a"), True),
    ("sha256:ab%", image_id("a"), False),
    ("SHA256%", image_id("a"), False),
    ("sha_56%", image_id("a"), True),
    ("sha\\_56%", image_id("a"), False),
    ("%", "", True),
    ("a.b%", "axb", False),
])
def test_sql_like_matches(pattern, text, expected):
    assert sql_like_matches(pattern, text) is expected


# A portable data hash as container_image

@pytest.mark.parametrize("text, expected", [
    ("d41d8cd98f00b204e9800998ecf8427e+0", "d41d8cd98f00b204e9800998ecf8427e+0"),
    ("d41d8cd98f00b204e9800998ecf8427e+0+Afoo@12345678+Kzzzzz", "d41d8cd98f00b204e9800998ecf8427e+0"),
    ("d41d8cd98f00b204e9800998ecf8427e", "d41d8cd98f00b204e9800998ecf8427e"),
    ("D41D8CD98F00B204E9800998ECF8427E+0", "D41D8CD98F00B204E9800998ECF8427E+0"),
    ("d41d8cd98f00b204e9800998ecf8427e+0+bad", None),
    ("tiny:1.0", None),
    (hex_id("a"), None),
])
def test_keep_locator(text, expected):
    assert keep_locator(text) == expected


def test_portable_data_hash_names_its_collection():
    older = collection("a")
    newer = collection("b")
    links = [
        link(older, "2026-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
        link(newer, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ]
    choice = choose(older.portable_data_hash + "+Asignature@12345678", links, [older, newer], ["v2"])
    assert choice.matched_by == MATCHED_BY_PORTABLE_DATA_HASH
    assert (choice.winner.collection.uuid, choice.winner.link) == (older.uuid, None)
    assert choice.portable_data_hash == older.portable_data_hash


@pytest.mark.parametrize("container_image", ["a" * 32, "A" * 32 + "+1"])
def test_portable_data_hash_is_compared_as_written(container_image):
    a = collection("a")
    assert winner_uuid(container_image, [], [a]) is None


def test_incompatible_portable_data_hash_is_not_found_unless_migrated():
    v1 = collection("b", file_names=[V1_NAME])
    v2 = collection("a")
    choice = choose(v1.portable_data_hash, [], [v1, v2], ["v2"])
    assert choice.error == f'docker image "{v1.portable_data_hash}" not found'
    assert winner_uuid(v1.portable_data_hash, [], [v1, v2], migration_links=[migration(v1, v2)]) == v2.uuid


# The module's resolution report

def test_resolution_resolves():
    mine = collection("a")
    links = [link(mine, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")]
    resolution = resolve("tiny:1.0", "sha256:" + "A" * 64, links, [mine], ["v2"])
    assert (resolution.status, resolution.resolves_to_image) == (RESOLVES, True)
    assert mine.uuid in resolution.message


def test_resolution_names_the_newer_build_that_wins():
    mine = collection("a")
    newer_build = collection("b")
    links = [
        link(mine, "2026-06-01T00:00:00Z", "2025-01-01T00:00:00Z"),
        link(newer_build, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ]
    resolution = resolve("tiny:1.0", image_id("a"), links, [mine, newer_build], ["v2"])
    assert (resolution.status, resolution.resolves_to_image) == (OTHER_IMAGE, False)
    assert resolution.winner.image_id == image_id("b")
    assert resolution.own_candidate.collection.uuid == mine.uuid
    assert image_id("b") in resolution.message
    assert "newest build, not the newest upload" in resolution.message


def test_resolution_explains_link_time_tiebreak():
    mine = collection("a")
    later_link = collection("b")
    links = [
        link(mine, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        link(later_link, "2026-02-01T00:00:00Z", "2026-01-01T00:00:00.5Z"),
    ]
    resolution = resolve("tiny:1.0", image_id("a"), links, [mine, later_link], ["v2"])
    assert resolution.status == OTHER_IMAGE
    assert "same image timestamp to the second" in resolution.message


def test_resolution_when_image_is_not_considered():
    other = collection("b")
    mine_v1 = collection("a", file_names=[hex_id("a") + ".tar"])
    links = [link(other, "2026-01-01T00:00:00Z"), link(mine_v1, "2026-02-01T00:00:00Z")]
    resolution = resolve("tiny:1.0", image_id("a"), links, [other, mine_v1], ["v2"])
    assert (resolution.status, resolution.own_candidate) == (OTHER_IMAGE, None)
    assert "no readable collection of a supported format" in resolution.message


def test_resolution_reports_a_tie():
    mine = collection("b")
    other = collection("a")
    links = [
        link(mine, "2026-01-01T00:00:00.1Z", "2026-01-01T00:00:00Z"),
        link(other, "2026-01-01T00:00:00.7Z", "2026-01-01T00:00:00Z"),
    ]
    resolution = resolve("tiny:1.0", image_id("b"), links, [mine, other], ["v2"])
    assert (resolution.status, resolution.resolves_to_image) == (AMBIGUOUS, False)
    assert "ambiguous" in resolution.message


def test_resolution_when_nothing_resolves():
    resolution = resolve("registry.example:5000/team/bwa", image_id("a"), [], [], ["v2"])
    assert (resolution.status, resolution.winner) == (UNRESOLVABLE, None)
    assert "not found" in resolution.message


def test_same_image_id():
    assert same_image(image_id("a"), hex_id("a"))
    assert same_image(image_id("a"), "sha256:" + "A" * 64)
    assert not same_image(image_id("a"), image_id("b"))
