# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Checks of the project a task names, before anything is changed in it.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError

ARVADOS_UUID = re.compile(r"[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}")
# What the middle part of a uuid says it is; a project is a group (j7d0g), and a user (tpzed) stands for its home project.
PROJECT_INFIXES = ("j7d0g", "tpzed")
OTHER_KINDS = {
    "4zz18": "a collection", "o0j2j": "a link", "xvhdp": "a container request", "dz642": "a container",
    "7fd4e": "a workflow", "gj3su": "an API token", "bi6l4": "a Keep service",
}


def check_project_uuid(project_uuid: str) -> None:
    """Fail before any request when `project_uuid` is not spelled as an Arvados uuid, or is the uuid of something that
    is not a project (whatever the task's state)."""
    if not ARVADOS_UUID.fullmatch(project_uuid):
        raise ArvadosClientError(_malformed_message(project_uuid))
    kind = OTHER_KINDS.get(project_uuid[6:11])
    if kind is not None:
        raise ArvadosClientError(f"project_uuid {project_uuid} is the uuid of {kind}, not of a project: give the uuid of a project "
                                 "(zzzzz-j7d0g-...), or leave project_uuid out for the token user's home project")


def _malformed_message(project_uuid: str) -> str:
    return (f"project_uuid {project_uuid!r} is not an Arvados uuid (such as zzzzz-j7d0g-0123456789abcde): give the uuid of a "
            "project, or leave project_uuid out for the token user's home project")


def check_project(client: t.Any, project_uuid: str, writable: bool = True) -> None:
    """Fail before any change when the project is unknown, trashed or (when `writable`) not writable by this token."""
    resource = client.api.users() if "-tpzed-" in project_uuid else client.api.groups()
    try:
        project = client.execute(resource.get(uuid=project_uuid))
    except ArvadosClientError as exc:
        if exc.status in (403, 404):
            raise ArvadosClientError(unreadable_project_message(client, project_uuid, exc, "can_write" if writable else "can_read")) from None
        raise
    if (writable and project.get("can_write") is False) or project.get("is_trashed"):
        state = "is trashed" if project.get("is_trashed") else "is not writable with this token"
        raise ArvadosClientError(f"project_uuid {project_uuid} {state}: choose another project, or ask its owner for can_write")


def unreadable_project_message(client: t.Any, project_uuid: str, error: ArvadosClientError, permission: str = "can_write") -> str:
    """Why the project cannot be read: not a uuid, trashed (a get that includes the trash finds it), or unknown to this token."""
    if not ARVADOS_UUID.fullmatch(project_uuid):
        return _malformed_message(project_uuid)
    if "-j7d0g-" in project_uuid and _is_trashed(client, project_uuid):
        return f"project_uuid {project_uuid} is trashed: untrash it, or choose another project"
    return (f"project_uuid {project_uuid} is not a project this token can read: check the uuid, or ask the project's owner to share it "
            f"with {permission} ({error})")


def _is_trashed(client: t.Any, project_uuid: str) -> bool:
    try:
        return bool(client.execute(client.api.groups().get(uuid=project_uuid, include_trash=True)).get("is_trashed"))
    except ArvadosClientError:
        return False
