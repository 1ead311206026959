# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The server's `LIKE 'name%'` hash link fallback, batched: covering prefixes and matching many patterns at once."""

from __future__ import annotations

import random

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils._cluster_view import (
    covering_prefixes,
    like_prefix,
    names_like_any,
    sql_like_matches,
)

# Few letters, so that random names and patterns share prefixes and wildcards match often.
ALPHABET = "ab:_%\\A"


@pytest.mark.parametrize("pattern, prefix", [
    ("team/tiny%", "team/tiny"),
    ("my_app%", "my"),
    ("50%off%", "50"),
    ("%", ""),
    ("_x%", ""),
    ("a\\_b%", "a"),
])
def test_like_prefix_stops_at_the_first_wildcard_or_escape(pattern, prefix):
    assert like_prefix(pattern) == prefix


@pytest.mark.parametrize("patterns, at_most, expected", [
    (["abc%", "abd%", "x%"], 3, ["abc", "abd", "x"]),
    (["abc%", "abd%", "x%"], 2, ["ab", "x"]),
    (["abc%", "abd%", "x%"], 1, [""]),
    (["ab%", "abc%", "ab_x%"], 5, ["ab"]),
    (["sha256:aa%", "sha256:ab%", "aa%", "ab%"], 2, ["a", "sha256:a"]),
    (["my_app%", "mystery%"], 2, ["my"]),
    ([], 4, []),
])
def test_covering_prefixes(patterns, at_most, expected):
    assert covering_prefixes(patterns, at_most) == expected


def random_text(rng: random.Random, longest: int) -> str:
    return "".join(rng.choice(ALPHABET) for _index in range(rng.randrange(longest + 1)))


@pytest.mark.parametrize("seed", range(40))
def test_reads_of_covering_prefixes_hold_every_match(seed):
    """Whatever the patterns (wildcards, escapes, case), the reads of the covering prefixes return every name a
    pattern matches, in at most the number of reads asked for, and matching them here is exactly LIKE."""
    rng = random.Random(seed)
    names = {random_text(rng, 6) for _index in range(200)}
    patterns = [random_text(rng, 4) + "%" for _index in range(rng.randrange(1, 30))]
    at_most = rng.randrange(1, 6)
    prefixes = covering_prefixes(patterns, at_most)
    assert len(prefixes) <= at_most
    assert not [(one, other) for one in prefixes for other in prefixes if one != other and other.startswith(one)]
    expected = {name for name in names if any(sql_like_matches(pattern, name) for pattern in patterns)}
    read = {name for name in names if any(name.startswith(prefix) for prefix in prefixes)}
    assert expected <= read
    assert names_like_any(patterns, read) == expected


@pytest.mark.parametrize("patterns, expected", [
    (["my_app%"], {"my_app", "myXapp:1", "my_apple"}),
    (["my%app%"], {"my_app", "myXapp:1", "my_apple", "my/other/app"}),
    (["My_app%"], set()),
    (["my\\_app%"], {"my_app", "my_apple"}),
    (["%"], {"my_app", "myXapp:1", "my_apple", "my/other/app", "sha256:ab"}),
    (["sha256_a%", "my/%"], {"sha256:ab", "my/other/app"}),
])
def test_names_like_any_is_case_sensitive_with_wildcards(patterns, expected):
    names = ["my_app", "myXapp:1", "my_apple", "my/other/app", "sha256:ab"]
    assert names_like_any(patterns, names) == expected
