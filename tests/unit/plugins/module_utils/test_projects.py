# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The checks of a project_uuid made before any request: its spelling, and what its uuid says it is."""

from __future__ import annotations

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError
from ansible_collections.arvados.cluster.plugins.module_utils._projects import check_project_uuid


@pytest.mark.parametrize("project_uuid", ["zzzzz-j7d0g-0123456789abcde", "zzzzz-tpzed-0123456789abcde", "yyyyy-j7d0g-0123456789abcde"])
def test_projects_and_home_projects_pass(project_uuid: str) -> None:
    check_project_uuid(project_uuid)


@pytest.mark.parametrize("project_uuid, words", [
    ("my project", ("project_uuid 'my project' is not an Arvados uuid", "give the uuid of a project")),
    ("zzzzz-4zz18-0123456789abcde", ("project_uuid zzzzz-4zz18-0123456789abcde is the uuid of a collection, not of a project",
                                     "give the uuid of a project")),
    ("zzzzz-o0j2j-0123456789abcde", ("is the uuid of a link, not of a project",)),
])
def test_what_is_not_a_project_uuid_is_named(project_uuid: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ArvadosClientError) as caught:
        check_project_uuid(project_uuid)
    for fragment in words:
        assert fragment in str(caught.value)
