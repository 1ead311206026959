# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.arvados.cluster.plugins.filter.repo_tag import FilterModule, repo_tag


@pytest.mark.parametrize("name, tag, expected", [
    ("tiny", None, "tiny:latest"),
    ("tiny:1.0", None, "tiny:1.0"),
    ("tiny", "1.0", "tiny:1.0"),
    ("tiny:1.0", "1.0", "tiny:1.0"),
    ("docker.io/library/debian", "12", "debian:12"),
    ("index.docker.io/library/debian:12", None, "debian:12"),
    ("docker.io/team/bwa:0.7.17", None, "team/bwa:0.7.17"),
    ("registry.example:443/team/bwa:0.7.17", None, "registry.example/team/bwa:0.7.17"),
    ("127.0.0.1:5000/bench/image-07:1", None, "127.0.0.1:5000/bench/image-07:1"),
])
def test_repo_tag_normalises_as_the_cluster_stores_it(name: str, tag: str | None, expected: str) -> None:
    assert repo_tag(name, tag) == expected


@pytest.mark.parametrize("name, tag, message", [
    ("tiny:1.0", "2.0", "tag"),
    ("Tiny", None, "lowercase"),
    ("sha256:" + "ab" * 32, None, "image id"),
    ("tiny@sha256:" + "ab" * 32, None, "digest"),
])
def test_repo_tag_refuses_what_names_no_repo_tag(name: str, tag: str | None, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        repo_tag(name, tag)


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters()["repo_tag"] is repo_tag
