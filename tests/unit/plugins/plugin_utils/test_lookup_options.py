# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

import pytest

from ansible.errors import AnsibleError

from ansible_collections.arvados.cluster.plugins.plugin_utils._lookup_options import reject_unknown_options

KNOWN = ["_terms", "api_host", "api_token", "on_missing", "project_uuid", "result"]


def test_a_misspelt_option_is_named_with_the_closest_one():
    with pytest.raises(AnsibleError, match=r"lookup: unknown option 'reslt': did you mean 'result'\? the options are api_host, "):
        reject_unknown_options("lookup", {"reslt": "uuid"}, KNOWN)


def test_an_option_like_none_is_named_with_the_whole_list():
    with pytest.raises(AnsibleError, match=r"unknown option 'xyzzy': the options are api_host, api_token, on_missing, project_uuid, result$"):
        reject_unknown_options("lookup", ["xyzzy"], KNOWN)


def test_known_options_pass():
    reject_unknown_options("lookup", ["result", "api_host"], KNOWN)
