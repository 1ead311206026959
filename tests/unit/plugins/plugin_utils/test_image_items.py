# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The docker_images role's items checked before anything runs: one line per bad item, naming its index and key."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

from ansible_collections.arvados.cluster.plugins.filter.image_item_problems import FilterModule
from ansible_collections.arvados.cluster.plugins.plugin_utils._image_items import ITEM_FIELDS, item_problems

ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "docker_images"


@pytest.mark.parametrize("items", [
    [],
    [{"name": "team/tiny:1.0"}],
    [{"name": "docker.io/team/tiny", "tag": "1.0", "source": "pull", "pull": "always", "platform": "linux/arm64/v8",
      "project_uuid": "zzzzz-j7d0g-0123456789abcde", "force": "yes", "verify": True}],
    [{"name": "team/tiny:1.0", "source": "archive", "archive_path": "/srv/tiny.tar"}],
    [{"name": "registry.example:5000/team/tiny:1.0", "source": "registry", "registry_username": "u", "registry_password": "p",
      "registry_ca_path": "/etc/ca.pem", "registry_insecure": "no", "platform": "linux/arm64"}],
    [{"name": "team/tiny:1.0", "tag": None, "source": "", "project_uuid": "", "platform": None, "force": 0}],
])
def test_good_items_have_no_problems(items):
    assert item_problems(items) == []


@pytest.mark.parametrize("item, line", [
    ({"nmae": "team/tiny:1.0"}, "docker_images_items[0]: unknown key 'nmae'; did you mean 'name'?"),
    ({"name": "team/tiny:1.0", "archive_pth": "/x.tar"}, "docker_images_items[0]: unknown key 'archive_pth'; did you mean 'archive_path'?"),
    ({"name": "team/tiny:1.0", "zzz": 1},
     "docker_images_items[0]: unknown key 'zzz'; the keys are archive_path, exclusive, force, name, platform, project_uuid, pull, "
     "registry_ca_path, registry_insecure, registry_password, registry_username, source, tag, verify"),
    ({"tag": "1.0"}, "docker_images_items[0]: no name; give the image as name: repo:tag"),
    ("team/tiny:1.0", "docker_images_items[0]: expected a dictionary such as {name: 'repo:tag'}, got string 'team/tiny:1.0'"),
    ({"name": "Team/Tiny:1.0"}, "docker_images_items[0].name: repository name 'Team/Tiny' must be lowercase; use 'team/tiny'."),
    ({"name": "team/tiny image"}, "docker_images_items[0].name: 'team/tiny image' contains whitespace; remove it."),
    ({"name": ""}, "docker_images_items[0].name: must not be empty; give an image name such as 'repo:tag'."),
    ({"name": "sha256:0123456789ab"}, "docker_images_items[0].name: 'sha256:0123456789ab' is an image id; the role stores images by "
                                      "repo:tag; give a repository name, or use the module arvados.cluster.arvados_docker_image "
                                      "for an image without a tag"),
    ({"name": "team/tiny", "tag": 1.1}, "docker_images_items[0].tag: expected a string, got number 1.1; quote it (YAML reads 1.10 as "
                                        "the number 1.1)"),
    ({"name": "team/tiny", "tag": ""}, "docker_images_items[0].tag: empty; leave tag out, or give one"),
    ({"name": "team/tiny", "tag": "-1"}, "docker_images_items[0].tag: '-1' is not a valid tag; a tag starts with a letter, digit or '_' "
                                         "and holds only letters, digits, '_', '.' and '-'."),
    ({"name": "team/tiny:2", "tag": "1"}, "docker_images_items[0].tag: name 'team/tiny:2' includes tag '2' but option tag is '1'; give "
                                          "the tag in only one of name and tag, or make them the same."),
    ({"name": "team/tiny", "source": "arhcive"}, "docker_images_items[0].source: 'arhcive' is not one of local, pull, archive, registry, arvados; "
                                                 "did you mean 'archive'?"),
    ({"name": "team/tiny", "pull": "never"}, "docker_images_items[0].pull: 'never' is not one of always, missing"),
    ({"name": "team/tiny", "force": "maybe"}, "docker_images_items[0].force: expected true or false, got string 'maybe'"),
    ({"name": "team/tiny", "source": "archive"}, "docker_images_items[0].archive_path: source archive needs archive_path, the path of a "
                                                 "`docker save` archive on the host that runs the module"),
    ({"name": "team/tiny", "archive_path": "/x.tar"}, "docker_images_items[0].archive_path: only read with source: archive, but the "
                                                      "source is local; set source: archive or drop archive_path"),
    ({"name": "team/tiny", "project_uuid": "my project"}, "docker_images_items[0].project_uuid: 'my project' is not an Arvados uuid "
                                                          "(such as zzzzz-j7d0g-0123456789abcde): give the uuid of a project, or leave "
                                                          "project_uuid out for the token user's home project"),
    ({"name": "team/tiny", "source": "pull", "registry_ca_path": "/ca.pem"},
     "docker_images_items[0].registry_ca_path: only read with source: registry, but the source is pull; set source: registry or drop it"),
    ({"name": "team/tiny", "source": "registry", "registry_password": 20250101},
     "docker_images_items[0].registry_password: expected a string, got number; quote it (YAML reads 1.10 as the number 1.1)"),
    ({"name": "team/tiny", "platform": "linux"}, "docker_images_items[0].platform: 'linux' is not os/architecture[/variant], e.g. linux/amd64"),
])
def test_a_bad_item_is_one_line_naming_its_index_and_key(item, line):
    assert item_problems([item]) == [line]


def test_every_bad_item_is_reported_in_order_and_good_ones_are_not():
    items = [{"name": "team/good:1.0"}, {"nmae": "x"}, {"name": "team/good:2.0"}, {"name": "Bad"}]
    problems = item_problems(items, variable="images")
    assert [problem.split(":", 1)[0] for problem in problems] == ["images[1]", "images[3].name"]


def test_the_default_source_decides_whether_archive_path_is_needed():
    assert item_problems([{"name": "team/tiny"}], default_source="archive")[0].startswith("docker_images_items[0].archive_path: source archive needs")
    assert item_problems([{"name": "team/tiny", "archive_path": "/x.tar"}], default_source="archive") == []
    assert item_problems([{"name": "team/tiny", "archive_path": "/x.tar", "source": "pull"}], default_source="archive")[0].endswith(
        "but the source is pull; set source: archive or drop archive_path")


def test_items_that_are_not_a_list_are_one_line():
    assert item_problems({"name": "team/tiny"}) == ["docker_images_items: expected a list of images, each with a name, got dictionary "
                                                    "{'name': 'team/tiny'}"]


def test_the_filter_is_the_check():
    image_item_problems = FilterModule().filters()["image_item_problems"]
    assert image_item_problems([{"nmae": "x"}], "local") == ["docker_images_items[0]: unknown key 'nmae'; did you mean 'name'?"]


def test_the_role_documents_exactly_the_keys_it_checks():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    description = specs["argument_specs"]["main"]["options"]["docker_images_items"]["description"]
    documented = [match.group(1) for line in description for match in [re.match(r"C\((\w+)\) \(", line)] if match]
    assert documented == list(ITEM_FIELDS)
    readme_row = next(line for line in (ROLE / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("| `docker_images_items`"))
    assert [key for key in ITEM_FIELDS if f"`{key}`" not in readme_row] == []
