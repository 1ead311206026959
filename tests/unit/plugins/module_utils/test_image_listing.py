# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

import datetime

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageRefError
from ansible_collections.arvados.cluster.plugins.module_utils._image_listing import (
    ImageFilter,
    listing_entry,
    mark_preferred,
)
from ansible_collections.arvados.cluster.plugins.module_utils._listing_capture import matches_nothing
from ansible_collections.arvados.cluster.plugins.module_utils._records import ImageCollection, ImageLink
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import Candidate, ServerChoice

EARLIEST = datetime.datetime(datetime.MINYEAR, 1, 1)
HEX = "be05d" + "0" * 59


def upstream_info(repo="tiny", tag="1.0", image_timestamp=EARLIEST, created=datetime.datetime(2026, 11, 26, 19, 56, 41, 294780)):
    """An entry as list_images_in_arv returns it (naive datetimes, EARLIEST_DATETIME for no image timestamp)."""
    return {"dockerhash": f"sha256:{HEX}", "repo": repo, "tag": tag, "_sort_key": (image_timestamp, created),
            "timestamp": created if image_timestamp is EARLIEST else image_timestamp, "collection": "zzzzz-4zz18-000000000000001"}


def test_listing_entries_carry_both_link_times():
    entry = listing_entry("zzzzz-4zz18-000000000000001", upstream_info(image_timestamp=datetime.datetime(2025, 1, 2, 3, 4, 5)))
    assert entry["image_timestamp"] == "2025-01-02T03:04:05.000000Z"
    assert entry["created_at"] == "2026-11-26T19:56:41.294780Z"
    assert (entry["repo"], entry["tag"], entry["image_id"]) == ("tiny", "1.0", f"sha256:{HEX}")


def test_listing_entries_without_image_timestamp_or_names():
    entry = listing_entry("zzzzz-4zz18-000000000000001", dict(upstream_info(repo="<none>", tag="<none>"), dockerhash="<unknown>"))
    assert entry["image_timestamp"] is None
    assert (entry["repo"], entry["tag"], entry["image_id"]) == (None, None, None)


def test_v1_hash_link_names_become_full_image_ids():
    entry = listing_entry("zzzzz-4zz18-000000000000001", dict(upstream_info(), dockerhash=HEX))
    assert entry["image_id"] == f"sha256:{HEX}"


@pytest.mark.parametrize("name, tag, image_id, repo, want_tag, prefix", [
    (None, None, None, None, None, None),
    ("tiny:1.0", None, None, "tiny", "1.0", None),
    ("tiny", "1.0", None, "tiny", "1.0", None),
    ("docker.io/library/tiny", None, None, "tiny", None, None),
    ("registry.example:5000/team/bwa", None, None, "registry.example:5000/team/bwa", None, None),
    (None, "1.0", "be05d0000000", None, "1.0", "sha256:be05d0000000"),
    (None, None, "sha256:be05", None, None, "sha256:be05"),
])
def test_filters_are_normalised(name, tag, image_id, repo, want_tag, prefix):
    image_filter = ImageFilter(name, tag, image_id)
    assert (image_filter.repo, image_filter.tag, image_filter.image_id_prefix) == (repo, want_tag, prefix)


@pytest.mark.parametrize("name, tag, image_id, message", [
    ("tiny:1.0", "2.0", None, "includes tag"),
    ("Tiny", None, None, "lowercase"),
    (None, None, "be05", "not an image id"),
    (None, None, "sha256:xyz", "not an image id"),
])
def test_bad_filters_say_why(name, tag, image_id, message):
    with pytest.raises(ImageRefError, match=message):
        ImageFilter(name, tag, image_id)


def test_filters_match_entries_and_narrow_the_listing():
    entry = listing_entry("zzzzz-4zz18-000000000000001", upstream_info())
    assert ImageFilter("tiny", None, "be05d0000000").matches(entry)
    assert not ImageFilter("tiny", "2.0", None).matches(entry)
    assert not ImageFilter(None, None, "sha256:be06").matches(entry)
    assert ImageFilter("tiny", "1.0", None).listing_searches() == [("tiny", "1.0")]
    assert ImageFilter("tiny", None, "sha256:be05").listing_searches() == [("sha256:be05", None), ("be05", None)]
    assert ImageFilter("tiny", None, None).listing_searches() == [(None, None)]


def _collection(uuid):
    return ImageCollection(uuid, "0" * 32 + "+1", "zzzzz-j7d0g-000000000000001", file_names=(f"sha256:{HEX}.tar",))


def _link(name, collection):
    return ImageLink.from_api({"uuid": "zzzzz-o0j2j-000000000000001", "link_class": "docker_image_repo+tag", "name": name,
                               "head_uuid": collection.uuid, "owner_uuid": collection.owner_uuid,
                               "created_at": "2026-01-01T00:00:00Z", "properties": {"image_timestamp": "2025-01-01T00:00:00Z"}})


def test_the_server_choice_marks_one_entry_per_name():
    first, second, migrated = (_collection(f"zzzzz-4zz18-00000000000000{n}") for n in (1, 2, 3))
    images = [
        {"repo": "tiny", "tag": "1.0", "collection_uuid": first.uuid, "preferred": False},
        {"repo": "tiny", "tag": "1.0", "collection_uuid": second.uuid, "preferred": False},
        {"repo": "old", "tag": "1", "collection_uuid": second.uuid, "preferred": False},
        {"repo": None, "tag": None, "collection_uuid": first.uuid, "preferred": False},
    ]
    choices = {
        "tiny:1.0": ServerChoice("tiny:1.0", "docker_image_repo+tag", (Candidate(second, None, f"sha256:{HEX}"),)),
        "old:1": ServerChoice("old:1", "docker_image_repo+tag", (Candidate(migrated, _link("old:1", second), HEX, migrated_from=second),)),
    }
    marked = mark_preferred(images, choices)
    # The migrated copy is the one the server runs for old:1: it is listed in front of the entry it replaces.
    assert [(image["collection_uuid"], image["repo"], image["preferred"]) for image in marked] == [
        (first.uuid, "tiny", False), (second.uuid, "tiny", True), (migrated.uuid, "old", True), (second.uuid, "old", False),
        (first.uuid, None, False),
    ]
    assert marked[2]["migrated_from"] == second.uuid and marked[2]["image_timestamp"] == "2025-01-01T00:00:00.000000Z"
    assert [image["preferred"] for image in images] == [False, False, False, False]


def test_a_migration_target_outside_the_filters_is_not_listed():
    source, target = (_collection(f"zzzzz-4zz18-00000000000000{n}") for n in (1, 2))
    images = [{"repo": "old", "tag": "1", "collection_uuid": source.uuid, "preferred": False}]
    choices = {"old:1": ServerChoice("old:1", "docker_image_repo+tag", (Candidate(target, _link("old:1", source), HEX, migrated_from=source),))}
    marked = mark_preferred(images, choices, wanted=lambda image: image["collection_uuid"] != target.uuid)
    assert [(image["collection_uuid"], image["preferred"]) for image in marked] == [(source.uuid, False)]


def test_only_an_empty_in_list_matches_nothing():
    assert matches_nothing([["link_class", "=", "docker_image_hash"], ["head_uuid", "in", []]])
    assert not matches_nothing([["head_uuid", "in", ["zzzzz-4zz18-000000000000000"]]])
    assert not matches_nothing([["head_uuid", "not in", []], ["name", "=", []]])
    assert not matches_nothing([])
