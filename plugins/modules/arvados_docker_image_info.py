#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
module: arvados_docker_image_info
short_description: List the Docker images stored in an Arvados cluster
version_added: 0.1.0
description:
  - Lists the Docker images the token can read, as C(arv-keepdocker images) prints them, as data. The listing is
    C(arvados.commands.keepdocker.list_images_in_arv), the one C(arv-keepdocker) relies on. Each image comes once per
    repository and tag it is linked under; an image without any C(docker_image_repo+tag) link comes once, with no
    repository and tag.
  - Marks, for each C(repo:tag), the image that the API server would run for a container request with that name
    (see P(arvados.cluster.arvados_docker_image#lookup) for the rules), from everything the token can read, whatever
    the filters. The module M(arvados.cluster.arvados_docker_image) and that lookup give the same answer.
  - Like M(arvados.cluster.arvados_docker_image), a task on the controller through the local connection with the
    controller's own Python runs the module's code in the controller's task process, through its action plugin.
author:
  - arvados.cluster contributors (@arvados)
requirements:
  - arvados-python-client >= 3.2.1
extends_documentation_fragment:
  - arvados.cluster.arvados
  - arvados.cluster.attributes
  - arvados.cluster.attributes.actiongroup_arvados
  - arvados.cluster.attributes.controller_action
  - arvados.cluster.attributes.info_module
options:
  name:
    description:
      - Only images of this repository, given as C(repo) or C(repo:tag).
      - Names are normalised as Docker does, so C(docker.io/library/debian) is C(debian).
    type: str
  tag:
    description:
      - Only images with this tag. A tag in both O(name) and O(tag) must be the same.
    type: str
  image_id:
    description:
      - Only the image with this id, or the images whose id starts with this prefix, given as C(sha256:<hex>) with
        at least 4 hex digits, or as 12 to 64 bare hex digits.
    type: str
  project_uuid:
    description:
      - Only images whose links and collection this project owns, as C(arv-keepdocker --project-uuid) lists them.
      - Checked as M(arvados.cluster.arvados_docker_image) checks it, so a mistyped or unreadable project, or the uuid
        of something else (a collection, say), fails the task rather than listing nothing.
    type: str
notes:
  - The listing orders the images of each name by the image timestamp and link creation time at full precision, and
    places a collection by its most preferred link; the API server compares whole seconds, places a collection by its
    oldest matching link, and skips formats the cluster does not support. RV(images[].preferred) follows the server.
seealso:
  - module: arvados.cluster.arvados_docker_image
  - plugin: arvados.cluster.arvados_docker_image
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: List every image the token can read
  arvados.cluster.arvados_docker_image_info:
  register: all_images

- name: The images of one project
  arvados.cluster.arvados_docker_image_info:
    project_uuid: "{{ images_project_uuid }}"
  register: project_images

- name: Every image tagged team/bwa:0.7.17, and which one containers run
  arvados.cluster.arvados_docker_image_info:
    name: team/bwa
    tag: 0.7.17
  register: bwa

- name: Show the portable data hash containers run for team/bwa:0.7.17
  ansible.builtin.debug:
    msg: "{{ (bwa.images | selectattr('preferred') | first).portable_data_hash }}"

- name: Where an image id is stored
  arvados.cluster.arvados_docker_image_info:
    image_id: "{{ bwa.images[0].image_id[:19] }}"
  register: bwa_copies
"""

RETURN = r"""
images:
  description:
    - The images, one entry per collection and C(repo:tag), in the listing's order (each name's images from most to
      least preferred).
  returned: always
  type: list
  elements: dict
  contains:
    repo:
      description: The repository, or null for an image listed only by its C(docker_image_hash) link.
      type: str
      sample: team/bwa
    tag:
      description: The tag, or null.
      type: str
      sample: 0.7.17
    image_id:
      description:
        - The image id from the collection's C(docker_image_hash) link, as C(sha256:<hex>) (v1 images' links name the
          bare hex), or null when it has none.
      type: str
      sample: sha256:be05d0e5e2b6d3c4b1a7d1e9f7c0a1b2c3d4e5f60718293a4b5c6d7e8f901234
    collection_uuid:
      description: The collection holding the image.
      type: str
      sample: zzzzz-4zz18-0123456789abcde
    portable_data_hash:
      description: Its portable data hash, the value to put in a container request.
      type: str
      sample: 7f3b1e0e5d3b2e5c9c3b9e1f3a6d1c2e+1224
    owner_uuid:
      description: The project or user that owns the collection.
      type: str
      sample: zzzzz-j7d0g-0123456789abcde
    image_timestamp:
      description: The image's build time recorded on the link, or null when the link has none.
      type: str
      sample: "2026-11-26T19:56:41.294780Z"
    created_at:
      description: When the link this entry comes from was created.
      type: str
      sample: "2026-11-26T20:01:12.000104Z"
    preferred:
      description:
        - Whether the API server would run this collection for a container request with C(repo:tag), judged from
          everything the token can read, whatever the filters. Exactly one entry per C(repo:tag) is preferred when
          the name resolves (none when the server would refuse it, or when the image it runs does not pass the
          filters); false for entries without a repository.
        - When the server follows a C(docker_image_migration) link from the image the name matches (an image of a
          format the cluster does not support) to a compatible copy, the copy is the preferred entry, listed even
          when no tag link points at it, with RV(images[].migrated_from) naming the collection it replaces.
      type: bool
    migrated_from:
      description:
        - For the preferred entry reached through a C(docker_image_migration) link, the collection the link leads
          from (the one the C(repo:tag) link points at); null otherwise.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arvados.cluster.plugins.module_utils._image_listing import argument_spec, list_images
from ansible_collections.arvados.cluster.plugins.module_utils._task import run_module


def main() -> None:
    run_module(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True), list_images)


if __name__ == "__main__":
    main()
