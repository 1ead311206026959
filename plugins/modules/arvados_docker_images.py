#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
module: arvados_docker_images
short_description: Ensure several Docker images in an Arvados cluster at once
version_added: 0.1.0
description:
  - Does for each entry of O(images) what M(arvados.cluster.arvados_docker_image) does with the same options, up to
    O(parallel) images at a time, over one connection to the cluster. Uploads of different images run at the same time.
  - Each image's result, in C(results), is the one M(arvados.cluster.arvados_docker_image) returns for it, failures
    included. An image that fails does not stop the others; the task fails once all have ended, and its message
    names each image that failed.
  - A task that runs on the controller through the local connection, with the controller's own Python as its
    interpreter, runs the module's code in the controller's task process, as M(arvados.cluster.arvados_docker_image) does.
author:
  - arvados.cluster contributors (@arvados)
requirements:
  - arvados-python-client >= 3.2.1
  - docker >= 7.1.0 (for images with C(source=local) or C(source=pull))
extends_documentation_fragment:
  - arvados.cluster.arvados
  - arvados.cluster.arvados.DOCKER
  - arvados.cluster.attributes
  - arvados.cluster.attributes.actiongroup_arvados
  - arvados.cluster.attributes.controller_action
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  images:
    description:
      - The images to ensure. Each entry takes the options of M(arvados.cluster.arvados_docker_image) (C(name),
        C(tag), C(state), C(source), C(pull), C(platform), C(archive_path), C(project_uuid), C(force), C(verify) and the
        others), except the connection and Docker options, which are the task's and apply to every image.
      - An entry with an option the image module does not take, or without C(name), fails alone, as the image module
        would.
    type: list
    elements: dict
    required: true
  parallel:
    description:
      - How many images are ensured at once.
      - Memory grows with it. Each upload holds at most two Keep blocks of 64 MiB in memory, so O(parallel=4)
        holds at most 512 MiB of blocks while four uploads run; images already in the cluster cost next to nothing.
    type: int
    default: 4
notes:
  - Images that share an image id (two tags of one image) still upload it once; see the notes of
    M(arvados.cluster.arvados_docker_image).
seealso:
  - module: arvados.cluster.arvados_docker_image
"""

EXAMPLES = r"""
- name: Store three images, two at a time
  arvados.cluster.arvados_docker_images:
    parallel: 2
    images:
      - name: team/bwa:0.7.17
        project_uuid: "{{ images_project_uuid }}"
      - name: team/samtools:1.19
        project_uuid: "{{ images_project_uuid }}"
      - name: team/tools:1.0
        source: archive
        archive_path: /srv/images/tools.tar
        project_uuid: "{{ images_project_uuid }}"
  register: stored

- name: Show the portable data hash of each
  ansible.builtin.debug:
    msg: "{{ stored.results | map(attribute='portable_data_hash') | list }}"
"""

RETURN = r"""
results:
  description:
    - One result per entry of O(images), in the same order, as M(arvados.cluster.arvados_docker_image) returns it
      (C(collection_uuid), C(portable_data_hash), C(image_id), C(actions), C(changed) and the rest).
    - An image that failed has C(failed) and C(msg).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arvados.cluster.plugins.module_utils._image_batch import argument_spec, ensure_images
from ansible_collections.arvados.cluster.plugins.module_utils._task import run_module


def main() -> None:
    run_module(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True), ensure_images)


if __name__ == "__main__":
    main()
