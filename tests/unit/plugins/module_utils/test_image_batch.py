# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
from __future__ import annotations

from ansible_collections.arvados.cluster.plugins.module_utils._image_batch import SHARED_OPTIONS, batch_result, image_label, image_spec

PROJECT = "zzzzz-j7d0g-0123456789abcde"


def test_labels_name_the_image_and_its_project() -> None:
    assert image_label({"name": "team/bwa", "tag": "0.7.17", "project_uuid": PROJECT}) == f"team/bwa:0.7.17 in {PROJECT}"
    assert image_label({"name": "host:5000/team/bwa:1"}) == "host:5000/team/bwa:1"
    assert image_label({"name": "host:5000/team/bwa", "tag": "2"}) == "host:5000/team/bwa:2"
    assert image_label({"tag": "1"}) == "an entry without a name:1"
    assert image_label("team/bwa") == "an entry"


def test_the_result_keeps_every_image_s_result_in_order_and_names_the_failed() -> None:
    images = [{"name": "a:1"}, {"name": "b:1"}, {"name": "c:1"}]
    results = [{"changed": True}, {"failed": True, "changed": False, "msg": "no such image"}, {"changed": False}]
    result = batch_result(images, results)
    assert result["results"] == results
    assert result["changed"] is True and result["failed"] is True
    assert result["msg"] == "1 of 3 images failed (b:1: no such image)"


def test_unchanged_images_leave_the_task_unchanged() -> None:
    assert batch_result([{"name": "a:1"}], [{"changed": False}]) == {"changed": False, "results": [{"changed": False}]}


def test_an_image_takes_the_image_module_s_options_but_the_connection() -> None:
    spec = image_spec()
    assert {"name", "tag", "source", "project_uuid", "verify", "claim_ttl"} <= set(spec)
    assert not set(spec) & set(SHARED_OPTIONS)
    assert {"api_token", "docker_host"} <= set(SHARED_OPTIONS)
