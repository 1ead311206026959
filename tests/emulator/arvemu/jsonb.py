"""PostgreSQL jsonb semantics (containment, key tests, ordering, ->>) for SQLite user functions."""
from __future__ import annotations

import functools
import json
import re
import typing as t

_TYPE_RANK = {type(None): 0, str: 1, int: 2, float: 2, bool: 3, list: 4, dict: 5}


def _load(text: str | None) -> t.Any:
    return None if text is None else json.loads(text)


def _scalar_equal(left: t.Any, right: t.Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    return type(left) is type(right) and left == right


def contains(container: t.Any, probe: t.Any, top_level: bool = True) -> bool:
    """container @> probe."""
    if isinstance(container, dict):
        return isinstance(probe, dict) and all(
            key in container and contains(container[key], value, top_level=False) for key, value in probe.items())
    if isinstance(container, list):
        if isinstance(probe, list):
            return all(any(contains(element, wanted, top_level=False) for element in container) for wanted in probe)
        if top_level and not isinstance(probe, dict):
            return any(not isinstance(element, (list, dict)) and _scalar_equal(element, probe) for element in container)
        return False
    if isinstance(probe, (list, dict)):
        return False
    return _scalar_equal(container, probe)


def key_exists(document: t.Any, key: t.Any) -> bool:
    """document ? key: an object key, or a string element of an array, or the string itself."""
    if not isinstance(key, str):
        return False
    if isinstance(document, dict):
        return key in document
    if isinstance(document, list):
        return any(isinstance(element, str) and element == key for element in document)
    return isinstance(document, str) and document == key


def as_text(value: t.Any) -> str | None:
    """The ->> operator's text form of a jsonb value."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _sort_key(value: t.Any) -> tuple:
    rank = _TYPE_RANK.get(type(value), 0)
    if isinstance(value, dict):
        return (rank, len(value), [(key, _sort_key(value[key])) for key in sorted(value)])
    if isinstance(value, list):
        return (rank, len(value), [_sort_key(element) for element in value])
    return (rank, value)


def compare(left: t.Any, operator: str, right: t.Any) -> bool:
    left_key, right_key = _sort_key(left), _sort_key(right)
    return {
        "<": left_key < right_key,
        "<=": left_key <= right_key,
        ">": left_key > right_key,
        ">=": left_key >= right_key,
    }[operator]


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str, insensitive: bool) -> re.Pattern:
    parts = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if insensitive else 0))


def like(value: str | None, pattern: str | None, insensitive: bool) -> bool | None:
    """SQL LIKE / ILIKE with backslash as the escape character, as PostgreSQL has it."""
    if value is None or pattern is None:
        return None
    return _like_regex(pattern, bool(insensitive)).fullmatch(value) is not None


def _sql_bool(result: bool | None) -> int | None:
    return None if result is None else int(result)


def sql_contains(document: str | None, probe: str) -> int | None:
    return None if document is None else int(contains(_load(document), _load(probe)))


def sql_key_exists(document: str | None, key: str) -> int | None:
    return None if document is None else int(key_exists(_load(document), key))


def sql_all_keys_exist(document: str | None, keys: str) -> int | None:
    if document is None:
        return None
    loaded = _load(document)
    return int(all(key_exists(loaded, key) for key in _load(keys)))


def sql_field_text(document: str | None, key: str) -> str | None:
    loaded = _load(document)
    return as_text(loaded.get(key)) if isinstance(loaded, dict) else None


def sql_field_compare(document: str | None, key: str, operator: str, operand: str) -> int | None:
    loaded = _load(document)
    if not isinstance(loaded, dict) or key not in loaded:
        return None
    return int(compare(loaded[key], operator, _load(operand)))


def sql_equal(document: str | None, operand: str) -> int | None:
    if document is None:
        return None
    loaded = _load(document)
    wanted = _load(operand)
    return int(_sort_key(loaded) == _sort_key(wanted))


def sql_like(value: str | None, pattern: str | None, insensitive: int) -> int | None:
    return _sql_bool(like(value, pattern, bool(insensitive)))


SQL_FUNCTIONS: dict[str, tuple[int, t.Callable]] = {
    "arv_jsonb_contains": (2, sql_contains),
    "arv_jsonb_key_exists": (2, sql_key_exists),
    "arv_jsonb_all_keys_exist": (2, sql_all_keys_exist),
    "arv_jsonb_field_text": (2, sql_field_text),
    "arv_jsonb_field_compare": (4, sql_field_compare),
    "arv_jsonb_equal": (2, sql_equal),
    "arv_like": (3, sql_like),
}
