"""Tags as a user moves them: a diff that shows every link the image keeps, purge of collections whose tags went
earlier, and `exclusive`, which rolls a tag back to an older build in one task.

Each case runs the module through ansible-playbook against the emulator and the private dockerd, and reads what the
cluster holds afterwards through an admin's API client.
"""
from __future__ import annotations

import pytest

from cluster import ClusterView
from hosts import Host, new_project

HASH, TAG = "docker_image_hash", "docker_image_repo+tag"


@pytest.fixture()
def delivery() -> str:
    """The token as a module option only: these cases are about tags, not about how the token arrives."""
    return "option"


def tag_in_daemon(images, source_ref: str, repo: str, tag: str) -> None:
    images.client.api.tag(source_ref, repository=repo, tag=tag)


def live_collections(view: ClusterView, project: str, image_id: str) -> list[str]:
    return [c["uuid"] for c in view.collections_of_image(project, image_id) if not c["is_trashed"]]


def tags_on(view: ClusterView, project: str, collection_uuid: str) -> set[tuple[str, str]]:
    return {(link["link_class"], link["name"]) for link in view.image_links(project) if link["head_uuid"] == collection_uuid}


# ---- the diff ---------------------------------------------------------------------------------------------------


def test_diff_of_a_new_tag_shows_the_tags_the_collection_keeps(host: Host, project: str, images, admin_view: ClusterView) -> None:
    repo = "faults/tags-diff"
    built = images.build(repo, "1.0", size=1000)
    first = host.module({"name": f"{repo}:1.0", "project_uuid": project})
    assert first.rc == 0 and first.result["changed"], first.describe()
    tag_in_daemon(images, f"{repo}:1.0", repo, "stable")
    args = {"name": f"{repo}:stable", "project_uuid": project}
    kept = [f"{HASH} {built.image_id}", f"{TAG} {repo}:1.0"]
    every = sorted(kept + [f"{TAG} {repo}:stable"])

    predicted = host.module(args, check=True, diff=True)
    real = host.module(args, diff=True)

    for run in (predicted, real):
        assert run.rc == 0 and run.result["changed"], run.describe()
        diff = run.result["diff"]
        assert diff["before"]["project_links"] == sorted(kept), diff
        assert diff["after"]["project_links"] == every, diff
    assert tags_on(admin_view, project, first.result["collection_uuid"]) == {tuple(line.split(" ", 1)) for line in every}

    again = host.module(args, diff=True)
    assert not again.result["changed"] and again.result["diff"]["before"] == again.result["diff"]["after"], again.describe()


# ---- purge ------------------------------------------------------------------------------------------------------


def test_purge_trashes_a_collection_whose_tag_an_earlier_run_removed(host: Host, project: str, images,
                                                                     admin_view: ClusterView) -> None:
    repo = "faults/tags-purge-later"
    built = images.build(repo, "1.0", size=1000)
    args = {"name": f"{repo}:1.0", "project_uuid": project}
    stored = host.module(args)
    untagged = host.module({**args, "state": "absent"})
    assert untagged.result["changed"] and live_collections(admin_view, project, built.image_id) == [stored.result["collection_uuid"]]

    predicted = host.module({**args, "state": "absent", "purge": True}, check=True, diff=True)
    purged = host.module({**args, "state": "absent", "purge": True})

    assert predicted.result["changed"] and predicted.result["actions"] == purged.result["actions"], predicted.describe()
    assert predicted.result["diff"]["after"]["project_collections"] == [], predicted.result["diff"]
    assert purged.rc == 0 and purged.result["changed"], purged.describe()
    assert purged.result["actions"][-1].startswith(f"trash collection {stored.result['collection_uuid']}"), purged.result["actions"]
    assert live_collections(admin_view, project, built.image_id) == []
    assert admin_view.image_links(project) == [], "the hash link goes with its collection"
    again = host.module({**args, "state": "absent", "purge": True})
    assert again.rc == 0 and not again.result["changed"], again.describe()


def test_purge_of_an_image_nobody_can_identify_asks_for_its_id(host: Host, project: str, images, admin_view: ClusterView) -> None:
    repo = "faults/tags-purge-unknown"
    built = images.build(repo, "1.0", size=1000)
    stored = host.module({"name": f"{repo}:1.0", "project_uuid": project})
    host.module({"name": f"{repo}:1.0", "project_uuid": project, "state": "absent"})
    images.remove(f"{repo}:1.0")
    before = admin_view.snapshot()

    refused = host.module({"name": f"{repo}:1.0", "project_uuid": project, "state": "absent", "purge": True})

    assert refused.failed and not refused.result.get("changed"), refused.describe()
    assert refused.msg.startswith(f"purge: cannot tell which image {repo}:1.0 is") and "give the image id as name" in refused.msg
    assert admin_view.snapshot().created_since(before) == set()
    assert live_collections(admin_view, project, built.image_id) == [stored.result["collection_uuid"]]

    by_id = host.module({"name": built.image_id, "project_uuid": project, "state": "absent", "purge": True})
    assert by_id.rc == 0 and by_id.result["changed"], by_id.describe()
    assert live_collections(admin_view, project, built.image_id) == []


# ---- exclusive --------------------------------------------------------------------------------------------------


def test_exclusive_rolls_a_tag_back_to_an_older_build(host: Host, project: str, images, admin_view: ClusterView) -> None:
    repo = "faults/tags-rollback"
    older = images.build(repo, "1.0", size=1000, seed=1)
    newer = images.build(repo, "2.0", size=1000, seed=2, distinct_second=True)
    tag_in_daemon(images, f"{repo}:2.0", repo, "stable")
    on_newer = host.module({"name": f"{repo}:stable", "project_uuid": project})
    tag_in_daemon(images, f"{repo}:1.0", repo, "stable")
    args = {"name": f"{repo}:stable", "project_uuid": project}
    plain = host.module(args)
    assert plain.rc == 0 and not plain.result["resolves_to"]["is_this_image"], "without exclusive the newer build keeps winning"

    predicted = host.module({**args, "exclusive": True}, check=True, diff=True)
    rolled = host.module({**args, "exclusive": True}, diff=True)

    newer_collection = on_newer.result["collection_uuid"]
    for run in (predicted, rolled):
        assert run.rc == 0 and run.result["changed"], run.describe()
        assert run.result["resolves_to"]["is_this_image"] and run.result["resolves_to"]["image_id"] == older.image_id, run.describe()
        [action] = run.result["actions"]
        assert action.startswith(f"delete {TAG} link '{repo}:stable' (") and action.endswith(
            f") from collection {newer_collection}, which holds another image (exclusive)"), action
        assert run.result["diff"]["before"]["other_images_tagged"] == [newer_collection]
        assert run.result["diff"]["after"]["other_images_tagged"] == []
    assert (TAG, f"{repo}:stable") not in tags_on(admin_view, project, newer_collection)
    assert (HASH, newer.image_id) in tags_on(admin_view, project, newer_collection), "only the tag moves"
    again = host.module({**args, "exclusive": True})
    assert again.rc == 0 and not again.result["changed"] and again.result["resolves_to"]["is_this_image"], again.describe()


def test_exclusive_leaves_other_projects_alone_and_names_the_one_that_wins(host: Host, project: str, images, emulator,
                                                                           admin_view: ClusterView) -> None:
    repo = "faults/tags-other-project"
    images.build(repo, "1.0", size=1000, seed=3)
    images.build(repo, "2.0", size=1000, seed=4, distinct_second=True)
    elsewhere = new_project(emulator, "faults tags elsewhere")
    tag_in_daemon(images, f"{repo}:2.0", repo, "stable")
    outside = host.module({"name": f"{repo}:stable", "project_uuid": elsewhere})
    tag_in_daemon(images, f"{repo}:1.0", repo, "stable")

    run = host.module({"name": f"{repo}:stable", "project_uuid": project, "exclusive": True})

    assert run.rc == 0 and run.result["changed"] and not run.result["resolves_to"]["is_this_image"], run.describe()
    warning = next(w for w in run.result.get("warnings", []) if w.startswith("exclusive:"))
    assert outside.result["collection_uuid"] in warning and elsewhere in warning and f"outside project {project}" in warning, warning
    assert (TAG, f"{repo}:stable") in tags_on(admin_view, elsewhere, outside.result["collection_uuid"])


@pytest.mark.parametrize("args, words", [
    ({"state": "absent"}, "exclusive makes repo:tag resolve to this image, and state: absent removes the tag"),
    ({"name": "sha256:" + "ab" * 32}, "exclusive needs a tag to make exclusive"),
])
def test_exclusive_refuses_what_has_no_tag_to_keep(host: Host, project: str, admin_view: ClusterView, args, words: str) -> None:
    before = admin_view.snapshot()
    run = host.module({"name": "faults/tags-conflict:1.0", "project_uuid": project, "exclusive": True, **args})
    assert run.failed and words in run.msg, run.describe()
    assert admin_view.snapshot().created_since(before) == set()


def test_the_role_rolls_a_tag_back_for_an_item_marked_exclusive(host: Host, project: str, images, dockerd) -> None:
    repo = "faults/tags-role"
    older = images.build(repo, "1.0", size=1000, seed=5)
    images.build(repo, "2.0", size=1000, seed=6, distinct_second=True)
    tag_in_daemon(images, f"{repo}:2.0", repo, "stable")
    host.module({"name": f"{repo}:stable", "project_uuid": project})
    tag_in_daemon(images, f"{repo}:1.0", repo, "stable")
    role_vars = {"docker_images_items": [{"name": f"{repo}:stable", "exclusive": True}], "docker_images_project_uuid": project,
                 "docker_images_docker_host": dockerd.docker_host, **{f"docker_images_{key}": value
                                                                      for key, value in host.connection_args().items()}}

    run = host.checked(host.runner.run([
        {"name": "the role", "ansible.builtin.include_role": {"name": "arvados.cluster.docker_images"}, "vars": role_vars},
        {"name": "task under test", "ansible.builtin.debug": {"msg": "{{ docker_images_resolved }}"}},
    ], env=host.env()))

    assert run.first_failure() is None, run.describe()
    stored = host.module({"name": f"{repo}:stable", "project_uuid": project})
    assert stored.result["resolves_to"]["is_this_image"] and stored.result["image_id"] == older.image_id, stored.describe()
    assert run.results["task under test"]["msg"] == {f"{repo}:stable": stored.result["portable_data_hash"]}
