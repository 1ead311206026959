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
      - The entries are checked before any image is ensured; an entry with an option the image module does not take, a
        value of the wrong kind, or no C(name), fails the task with nothing done. The image module's own checks of each
        image (a malformed name, options that do not fit together) fail that image alone.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:name).
        type: str
        required: true
      tag:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:tag).
        type: str
      state:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:state).
        type: str
        choices: [present, absent]
        default: present
      source:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:source).
        type: str
        choices: [local, pull, archive, registry, arvados]
        default: local
      pull:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:pull).
        type: str
        choices: [always, missing]
        default: missing
      platform:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:platform).
        type: str
      archive_path:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:archive_path).
        type: path
      project_uuid:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:project_uuid).
        type: str
      collection_name:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:collection_name).
        type: str
      properties:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:properties).
        type: dict
      replication:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:replication).
        type: int
      storage_classes:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:storage_classes).
        type: list
        elements: str
      force:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:force).
        type: bool
        default: false
      verify:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:verify).
        type: bool
        default: false
      force_image_format:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:force_image_format).
        type: bool
        default: false
      purge:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:purge).
        type: bool
        default: false
      exclusive:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:exclusive).
        type: bool
        default: false
      claim_ttl:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:claim_ttl).
        type: int
        default: 300
      source_api_host:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:source_api_host).
        type: str
      source_api_token:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:source_api_token).
        type: str
      source_api_insecure:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:source_api_insecure).
        type: bool
      source_cluster:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:source_cluster).
        type: str
      registry_username:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:registry_username).
        type: str
      registry_password:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:registry_password).
        type: str
      registry_ca_path:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:registry_ca_path).
        type: path
      registry_insecure:
        description:
          - As O(arvados.cluster.arvados_docker_image#module:registry_insecure).
        type: bool
        default: false
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
