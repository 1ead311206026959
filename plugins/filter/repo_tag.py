# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
name: repo_tag
short_description: The C(repo:tag) under which an Arvados cluster stores a Docker image name
version_added: 0.1.0
description:
  - Normalises a Docker image name as M(arvados.cluster.arvados_docker_image) and C(arv-keepdocker) store it in the
    C(docker_image_repo+tag) link, and returns C(repo:tag).
  - C(docker.io/library/debian) becomes C(debian), C(docker.io/team/bwa) becomes C(team/bwa), a registry's C(:443) port
    is dropped, and the tag defaults to V(latest).
  - This is the string to give a container request's C(container_image) or the
    P(arvados.cluster.arvados_docker_image#lookup) lookup, since the API server does not normalise names itself.
author:
  - arvados.cluster contributors (@arvados)
options:
  _input:
    description:
      - The image name, as C(repo), C(repo:tag) or C(host:port/path/repo:tag).
    type: str
    required: true
  tag:
    description:
      - The tag, when the name has none. A tag in both must be the same.
    type: str
"""

EXAMPLES = r"""
- name: The name a container request should use
  ansible.builtin.debug:
    msg: "{{ 'docker.io/library/debian' | arvados.cluster.repo_tag('12') }}"  # debian:12

- name: A registry on port 443
  ansible.builtin.debug:
    msg: "{{ 'registry.example:443/team/bwa:0.7.17' | arvados.cluster.repo_tag }}"  # registry.example/team/bwa:0.7.17
"""

RETURN = r"""
_value:
  description: The normalised C(repo:tag).
  type: str
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import ImageRefError, parse_image_ref


def repo_tag(name: str, tag: str | None = None) -> str:
    """`name` (and `tag`) as the cluster's docker_image_repo+tag link names it."""
    try:
        ref = parse_image_ref(name, tag)
    except ImageRefError as exc:
        raise AnsibleFilterError(f"arvados.cluster.repo_tag: {exc}") from exc
    if ref.repo_tag is None:
        raise AnsibleFilterError(f"arvados.cluster.repo_tag: {name!r} is an image id, which has no repo:tag")
    return ref.repo_tag


class FilterModule:
    """The collection's Jinja filters."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"repo_tag": repo_tag}
