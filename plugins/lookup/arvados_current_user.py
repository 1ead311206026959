# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
name: arvados_current_user
short_description: The uuid of the Arvados user a token belongs to, which is also the uuid of their home project
version_added: 0.1.0
description:
  - Asks the Arvados API server whose token the connection holds (C(users/current)) and returns that user's uuid.
  - In Arvados a user's home project has the user's uuid, so this is the project that objects go to when no other is
    given, as the P(arvados.cluster.docker_images#role) role uses it.
  - The connection is the one every module and lookup of the collection takes, read in the same order, so this tells
    which user the other tasks of a play act as.
author:
  - arvados.cluster contributors (@arvados)
requirements:
  - arvados-python-client >= 3.2.1 on the controller
options: {}
extends_documentation_fragment:
  - arvados.cluster.arvados
  - arvados.cluster.arvados.plugins
seealso:
  - plugin: arvados.cluster.arvados_docker_image
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Who the connection acts as
  ansible.builtin.debug:
    msg: "{{ lookup('arvados.cluster.arvados_current_user') }}"

- name: The home project of the token in a vaulted variable
  ansible.builtin.set_fact:
    home_project_uuid: "{{ lookup('arvados.cluster.arvados_current_user', api_token=vault_arvados_token) }}"
"""

RETURN = r"""
_raw:
  description:
    - One value, the uuid of the user the token belongs to, for example V(zzzzz-tpzed-0123456789abcde).
  type: list
  elements: str
"""

import typing as t

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.arvados.cluster.plugins.module_utils._errors import CollectionError
from ansible_collections.arvados.cluster.plugins.plugin_utils._connection import CONNECTION_VARIABLES, lookup_client
from ansible_collections.arvados.cluster.plugins.plugin_utils._lookup_options import reject_unknown_options


class LookupModule(LookupBase):

    def run(self, terms: list[t.Any], variables: dict[str, t.Any] | None = None, **kwargs: t.Any) -> list[t.Any]:
        if terms:
            raise AnsibleError("arvados_current_user lookup: takes no terms, only the connection options")
        reject_unknown_options("arvados_current_user lookup", kwargs, CONNECTION_VARIABLES)
        self.set_options(direct=kwargs)
        try:
            return [lookup_client(self, variables, kwargs).current_user()["uuid"]]
        except CollectionError as exc:
            raise AnsibleError(f"arvados_current_user lookup: {exc.user_message()}") from None
