# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
from __future__ import annotations

import datetime

from ansible_collections.arvados.cluster.plugins.module_utils._records import ImageCollection, ImageLink
from ansible_collections.arvados.cluster.plugins.module_utils._plan import (
    COPY,
    CREATE_LINK,
    DELETE_LINK,
    HASH_LINK,
    IMAGE_ID_PROPERTY,
    REPO_TAG_LINK,
    TRASH_COLLECTION,
    UPDATE_COLLECTION,
    UPLOAD,
    DesiredImage,
    ImageHoldings,
    PurgeCandidates,
    attribute_changes,
    new_collection_properties,
    plan_absent,
    plan_exclusive,
    plan_present,
)

IMAGE_ID = "sha256:" + "ab" * 32
PROJECT = "zzzzz-j7d0g-000000000000001"
ELSEWHERE = "zzzzz-j7d0g-000000000000002"
DESIRED = DesiredImage(image_id=IMAGE_ID, repo_tag="tiny:1.0", project_uuid=PROJECT)


CREATED = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def collection(uuid="zzzzz-4zz18-000000000000001", owner=PROJECT, **attributes) -> ImageCollection:
    return ImageCollection(uuid=uuid, portable_data_hash="d41d8cd98f00b204e9800998ecf8427e+0", owner_uuid=owner, **attributes)


def link(link_class, name, head="zzzzz-4zz18-000000000000001", uuid="zzzzz-o0j2j-000000000000001") -> ImageLink:
    return ImageLink(uuid=uuid, link_class=link_class, name=name, head_uuid=head, owner_uuid=PROJECT, created_at=CREATED)


def project_links(*links):
    """The project's links as the plan sees them: (link_class, name, head_uuid)."""
    return frozenset((one.link_class, one.name, one.head_uuid) for one in links)


def kinds(actions):
    return [(action.kind, action.link_class) for action in actions]


def test_missing_image_is_uploaded_then_linked_hash_link_first():
    actions = plan_present(DESIRED, ImageHoldings())
    assert kinds(actions) == [(UPLOAD, None), (CREATE_LINK, HASH_LINK), (CREATE_LINK, REPO_TAG_LINK)]
    assert actions[2].link_name == "tiny:1.0"


def test_image_readable_elsewhere_is_copied_not_uploaded():
    source = collection(uuid="zzzzz-4zz18-00000000000000e", owner=ELSEWHERE)
    actions = plan_present(DESIRED, ImageHoldings(readable_elsewhere=source))
    assert kinds(actions)[0] == (COPY, None)
    assert actions[0].source == source.uuid
    assert UPLOAD not in [action.kind for action in actions]


def test_image_in_project_with_both_links_needs_nothing():
    holdings = ImageHoldings(in_project=collection(), project_links=project_links(link(HASH_LINK, IMAGE_ID), link(REPO_TAG_LINK, "tiny:1.0")))
    assert plan_present(DESIRED, holdings) == []


def test_only_the_missing_link_is_repaired():
    holdings = ImageHoldings(in_project=collection(), project_links=project_links(link(HASH_LINK, IMAGE_ID)))
    actions = plan_present(DESIRED, holdings)
    assert kinds(actions) == [(CREATE_LINK, REPO_TAG_LINK)]
    assert actions[0].target == "zzzzz-4zz18-000000000000001"


def test_links_to_another_collection_do_not_count():
    holdings = ImageHoldings(in_project=collection(), project_links=project_links(link(HASH_LINK, IMAGE_ID, head="zzzzz-4zz18-000000000000009")))
    assert kinds(plan_present(DESIRED, holdings)) == [(CREATE_LINK, HASH_LINK), (CREATE_LINK, REPO_TAG_LINK)]


def test_collection_left_without_links_by_an_interrupted_run_only_gets_links():
    orphan = collection(properties={IMAGE_ID_PROPERTY: IMAGE_ID})
    actions = plan_present(DESIRED, ImageHoldings(in_project=orphan))
    assert kinds(actions) == [(CREATE_LINK, HASH_LINK), (CREATE_LINK, REPO_TAG_LINK)]


def test_force_uploads_even_when_present():
    desired = DesiredImage(image_id=IMAGE_ID, repo_tag="tiny:1.0", project_uuid=PROJECT, force=True)
    holdings = ImageHoldings(in_project=collection(), project_links=project_links(link(HASH_LINK, IMAGE_ID), link(REPO_TAG_LINK, "tiny:1.0")),
                             readable_elsewhere=collection(uuid="zzzzz-4zz18-00000000000000e", owner=ELSEWHERE))
    assert kinds(plan_present(desired, holdings))[0] == (UPLOAD, None)


def test_image_id_without_repo_gets_only_a_hash_link():
    desired = DesiredImage(image_id=IMAGE_ID, repo_tag=None, project_uuid=PROJECT)
    assert kinds(plan_present(desired, ImageHoldings())) == [(UPLOAD, None), (CREATE_LINK, HASH_LINK)]


def test_declared_attributes_are_enforced_in_place():
    stored = collection(name="Docker image tiny:1.0 sha256:abab", properties={"a": 1, IMAGE_ID_PROPERTY: IMAGE_ID},
                        replication_desired=None, storage_classes_desired=("default",))
    desired = DesiredImage(image_id=IMAGE_ID, repo_tag="tiny:1.0", project_uuid=PROJECT, collection_name="tiny image",
                           properties={"b": 2}, replication=3, storage_classes=["archive"])
    holdings = ImageHoldings(in_project=stored, project_links=project_links(link(HASH_LINK, IMAGE_ID), link(REPO_TAG_LINK, "tiny:1.0")))
    actions = plan_present(desired, holdings)
    assert kinds(actions) == [(UPDATE_COLLECTION, None)]
    assert actions[0].changes == {
        "name": "tiny image",
        "properties": {"a": 1, "b": 2, IMAGE_ID_PROPERTY: IMAGE_ID},
        "replication_desired": 3,
        "storage_classes_desired": ["archive"],
    }
    assert "name, properties, replication_desired, storage_classes_desired" in actions[0].description


def test_properties_already_merged_are_no_change():
    stored = collection(properties={"a": 1, "b": 2})
    desired = DesiredImage(image_id=IMAGE_ID, repo_tag=None, project_uuid=PROJECT, properties={"b": 2})
    assert attribute_changes(desired, stored) == {}


def test_new_collection_carries_the_image_identity():
    desired = DesiredImage(image_id=IMAGE_ID, repo_tag="tiny:1.0", project_uuid=PROJECT, properties={"team": "x"})
    assert new_collection_properties(desired) == {"team": "x", IMAGE_ID_PROPERTY: IMAGE_ID, "docker-image-repo-tag": "tiny:1.0"}


HEAD_A, HEAD_B = "zzzzz-4zz18-00000000000000a", "zzzzz-4zz18-00000000000000b"


def test_absent_deletes_links_and_purge_trashes_only_untagged_collections():
    tagged_elsewhere = link(REPO_TAG_LINK, "tiny:1.0", head=HEAD_A, uuid="zzzzz-o0j2j-00000000000000a")
    untagged = link(REPO_TAG_LINK, "tiny:1.0", head=HEAD_B, uuid="zzzzz-o0j2j-00000000000000b")
    purge = PurgeCandidates(collections=frozenset({HEAD_A, HEAD_B}), remaining_tags={HEAD_A: 1})
    actions = plan_absent([tagged_elsewhere, untagged], purge)
    assert [(a.kind, a.target) for a in actions] == [
        (DELETE_LINK, "zzzzz-o0j2j-00000000000000a"),
        (DELETE_LINK, "zzzzz-o0j2j-00000000000000b"),
        (TRASH_COLLECTION, HEAD_B),
    ]


def test_purge_trashes_a_collection_whose_tags_went_earlier_and_its_hash_link_first():
    hash_link = link(HASH_LINK, IMAGE_ID, head=HEAD_B, uuid="zzzzz-o0j2j-0000000000000hb")
    kept_hash = link(HASH_LINK, IMAGE_ID, head=HEAD_A, uuid="zzzzz-o0j2j-0000000000000ha")
    purge = PurgeCandidates(collections=frozenset({HEAD_A, HEAD_B}), remaining_tags={HEAD_A: 2}, hash_links=[hash_link, kept_hash])
    actions = plan_absent([], purge)
    assert [(a.kind, a.target) for a in actions] == [(DELETE_LINK, hash_link.uuid), (TRASH_COLLECTION, HEAD_B)]
    assert actions[0].description.endswith(", which no tag points at")


def test_purge_removes_a_hash_link_left_on_a_collection_already_trashed():
    dangling = link(HASH_LINK, IMAGE_ID, head=HEAD_B, uuid="zzzzz-o0j2j-0000000000000hb")
    actions = plan_absent([], PurgeCandidates(hash_links=[dangling]))
    assert [(a.kind, a.target) for a in actions] == [(DELETE_LINK, dangling.uuid)]


def test_absent_without_purge_keeps_collections():
    actions = plan_absent([link(REPO_TAG_LINK, "tiny:1.0")])
    assert [a.kind for a in actions] == [DELETE_LINK]


def test_absent_with_nothing_there_is_no_change():
    assert plan_absent([], PurgeCandidates()) == []


def test_exclusive_removes_the_tag_from_other_images_in_a_stable_order():
    later = link(REPO_TAG_LINK, "tiny:1.0", head=HEAD_B, uuid="zzzzz-o0j2j-00000000000000b")
    earlier = link(REPO_TAG_LINK, "tiny:1.0", head=HEAD_A, uuid="zzzzz-o0j2j-00000000000000a")
    actions = plan_exclusive(DESIRED, [later, earlier])
    assert [(a.kind, a.target) for a in actions] == [(DELETE_LINK, earlier.uuid), (DELETE_LINK, later.uuid)]
    assert actions[0].description == (f"delete docker_image_repo+tag link 'tiny:1.0' ({earlier.uuid}) from collection {HEAD_A}, "
                                      "which holds another image (exclusive)")
