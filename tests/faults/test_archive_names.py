"""An archive stored under a name it does not give its image: the task warns, naming the archive's names.

`docker save` of `repo:3.0` stored as `repo:9.0` is allowed (re-tagging is the user's call) but never silent. An
archive that names no image (`docker save <id>`) or names the one asked for, in either spelling, stays silent. OCI
archives name their image in index.json annotations; skopeo writes the tag alone there.
"""
from __future__ import annotations

import pathlib

from harness import archives
from hosts import Host
from playbooks import module_task

WARNED = "names its image"


def archive_task(host: Host, name: str, archive: pathlib.Path, project: str, task_name: str) -> dict:
    task = module_task(host.args({"name": name, "source": "archive", "archive_path": str(archive), "project_uuid": project}))
    task["name"] = task_name
    return task


def warnings_of(result: dict) -> list[str]:
    return [str(warning) for warning in result.get("warnings", [])]


def test_archive_named_otherwise_warns_and_one_named_so_or_unnamed_is_silent(host: Host, project: str, images, tmp_path) -> None:
    image = images.build("faults/archive-names", "3.0")
    saved = images.save(image.ref, tmp_path / "named.tar")
    unnamed = images.save(image.image_id, tmp_path / "unnamed.tar")
    oci = archives.oci_archive(saved, tmp_path / "oci.tar", "3.0")
    cases = {
        "renamed": ("faults/archive-names:9.0", saved),
        "unnamed": ("faults/archive-names:9.1", unnamed),
        "other spelling": ("docker.io/faults/archive-names:3.0", saved),
        "oci renamed": ("faults/archive-names:9.2", oci),
        "oci same tag": ("faults/archive-names:3.0", oci),
    }
    run = host.checked(host.runner.run([archive_task(host, name, archive, project, case) for case, (name, archive) in cases.items()],
                                       env=host.env()))
    for case in cases:
        assert run.results[case]["_status"] == "ok", run.describe()
    renamed = [warning for warning in warnings_of(run.results["renamed"]) if WARNED in warning]
    assert renamed == [f"archive_path: {saved} names its image faults/archive-names:3.0, not faults/archive-names:9.0; it is stored "
                       "as faults/archive-names:9.0 all the same. Check that the archive holds the image meant for "
                       "faults/archive-names:9.0, or give one of its names as name"], warnings_of(run.results["renamed"])
    assert [warning for warning in warnings_of(run.results["oci renamed"]) if WARNED in warning] == [
        f"archive_path: {oci} names its image 3.0, not faults/archive-names:9.2; it is stored as faults/archive-names:9.2 all the "
        "same. Check that the archive holds the image meant for faults/archive-names:9.2, or give one of its names as name"]
    for case in ("unnamed", "other spelling", "oci same tag"):
        assert not [warning for warning in warnings_of(run.results[case]) if WARNED in warning], (case, run.results[case])
