# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
name: image_item_problems
short_description: What is wrong with the items of the docker_images role, one line per bad item
version_added: 0.1.0
description:
  - >-
    Checks a list of images as the role C(arvados.cluster.docker_images) takes them in C(docker_images_items), and
    returns one line for each bad item, naming its index and key, for example
    C(docker_images_items[2]: unknown key 'nmae'; did you mean 'name'?). An empty list means every item is good.
  - An item is bad when it has a key the role does not know, lacks C(name), holds a value of the wrong kind or not
    among a key's choices, or holds a value M(arvados.cluster.arvados_docker_image) would refuse (a name or tag Docker
    would refuse, an image id as C(name), C(archive_path) without C(source=archive) or the reverse, a malformed
    C(project_uuid) or C(platform)).
  - The role runs it first, so that no item is uploaded while another one is bad.
author:
  - arvados.cluster contributors (@arvados)
options:
  _input:
    description:
      - The items, each a dictionary.
    type: list
    elements: raw
    required: true
  source:
    description:
      - The source of items that do not name one (the role's C(docker_images_source)).
    type: str
    default: local
  variable:
    description:
      - The name the lines give the list.
    type: str
    default: docker_images_items
"""

EXAMPLES = r"""
- name: Fail with one line per bad item, before anything else runs
  ansible.builtin.fail:
    msg: "{{ problems | join('; ') }}"
  when: problems | length > 0
  vars:
    problems: "{{ docker_images_items | arvados.cluster.image_item_problems(docker_images_source) }}"
"""

RETURN = r"""
_value:
  description: One line for each bad item, in the order of the items; empty when all are good.
  type: list
  elements: str
"""

import typing as t

from ansible_collections.arvados.cluster.plugins.plugin_utils._image_items import item_problems


def image_item_problems(items: t.Any, source: str = "local", variable: str = "docker_images_items") -> list[str]:
    """One line for each bad item of `items` (see plugin_utils/_image_items)."""
    return item_problems(items, source, variable)


class FilterModule:
    """The check of the docker_images role's items."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"image_item_problems": image_item_problems}
