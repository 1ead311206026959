# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The items of the docker_images role, checked before anything runs: one line per bad item, naming its index and key.

A bad item is one with a key the role does not know, a value of the wrong kind, or a value the upload module would
refuse (its name, tag, source and archive_path, project_uuid, platform), so no item is uploaded while another is bad.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing as t

from ansible.module_utils.parsing.convert_bool import BOOLEANS

from ansible_collections.arvados.cluster.plugins.module_utils._errors import CollectionError
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import parse_image_ref
from ansible_collections.arvados.cluster.plugins.module_utils._platform import parse_platform
from ansible_collections.arvados.cluster.plugins.module_utils._projects import check_project_uuid


@dataclasses.dataclass(frozen=True)
class ItemField:
    """One key of an item: `str` or `bool`, its choices when it has some, and whether its value is a secret (never shown)."""

    kind: str = "str"
    choices: tuple[str, ...] = ()
    secret: bool = False


# Every key an item takes, as meta/argument_specs.yml documents them.
ITEM_FIELDS: dict[str, ItemField] = {
    "name": ItemField(),
    "tag": ItemField(),
    "source": ItemField(choices=("local", "pull", "archive", "registry", "arvados")),
    "archive_path": ItemField(),
    "pull": ItemField(choices=("always", "missing")),
    "platform": ItemField(),
    "project_uuid": ItemField(),
    "force": ItemField("bool"),
    "verify": ItemField("bool"),
    "exclusive": ItemField("bool"),
    "registry_username": ItemField(),
    "registry_password": ItemField(secret=True),
    "registry_ca_path": ItemField(),
    "registry_insecure": ItemField("bool"),
}
REGISTRY_KEYS = ("registry_username", "registry_password", "registry_ca_path", "registry_insecure")


class ItemProblem(Exception):
    """What is wrong with one item: the key (None for the item as a whole) and the words."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


def item_problems(items: t.Any, default_source: str = "local", variable: str = "docker_images_items") -> list[str]:
    """One line for each bad item of `items`, in order: `variable[index].key: what is wrong and the fix`."""
    if not isinstance(items, list):
        return [f"{variable}: expected a list of images, each with a name, got {_kind(items)}"]
    problems = []
    for index, item in enumerate(items):
        try:
            check_item(item, default_source)
        except ItemProblem as problem:
            where = f"{variable}[{index}]" + (f".{problem.key}" if problem.key else "")
            problems.append(f"{where}: {problem}")
    return problems


def check_item(item: t.Any, default_source: str) -> None:
    """Raise ItemProblem for the first thing wrong with `item`."""
    if not isinstance(item, dict):
        raise ItemProblem(None, f"expected a dictionary such as {{name: 'repo:tag'}}, got {_kind(item)}")
    for key in item:
        _check_known(key)
    if item.get("name") is None:
        raise ItemProblem(None, "no name; give the image as name: repo:tag")
    for key, value in item.items():
        _check_value(key, value)
    _check_name(item["name"], item.get("tag"))
    _check_source(item.get("source") or default_source, item.get("archive_path"))
    _check_registry_keys(item, item.get("source") or default_source)
    _check_module_rules(item)


def _check_known(key: t.Any) -> None:
    if key in ITEM_FIELDS:
        return
    known = sorted(ITEM_FIELDS)
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"the keys are {', '.join(known)}"
    raise ItemProblem(None, f"unknown key {key!r}; {hint}")


def _check_value(key: str, value: t.Any) -> None:
    field = ITEM_FIELDS[key]
    if value is None:
        return
    if field.kind == "bool":
        if isinstance(value, bool) or (isinstance(value, (str, int)) and _lower(value) in BOOLEANS):
            return
        raise ItemProblem(key, f"expected true or false, got {_kind(value)}")
    if not isinstance(value, str):
        got = _kind(value).split(" ", 1)[0] if field.secret else _kind(value)
        raise ItemProblem(key, f"expected a string, got {got}; quote it (YAML reads 1.10 as the number 1.1)")
    if field.choices and value and value not in field.choices:
        close = difflib.get_close_matches(value, field.choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ItemProblem(key, f"{value!r} is not one of {', '.join(field.choices)}{hint}")


def _check_name(name: str, tag: str | None) -> None:
    if tag == "":
        raise ItemProblem("tag", "empty; leave tag out, or give one")
    try:
        ref = parse_image_ref(name, tag)
    except CollectionError as exc:
        raise _problem_of(str(exc)) from None
    if ref.repo_tag is None:
        raise ItemProblem("name", f"{name!r} is an image id; the role stores images by repo:tag; give a repository name, "
                                  "or use the module arvados.cluster.arvados_docker_image for an image without a tag")


def _problem_of(message: str) -> ItemProblem:
    """The module's message for a bad name or tag (`name: ...`, `tag: ...`, or about both) as the problem of its key."""
    for key in ("name", "tag"):
        if message.startswith(f"{key}: "):
            return ItemProblem(key, message[len(key) + 2:])
    return ItemProblem("tag", message)


def _check_source(source: str, archive_path: str | None) -> None:
    if source == "archive" and not archive_path:
        raise ItemProblem("archive_path", "source archive needs archive_path, the path of a `docker save` archive on the host that runs the module")
    if archive_path and source != "archive":
        raise ItemProblem("archive_path", f"only read with source: archive, but the source is {source}; set source: archive or drop archive_path")


def _check_registry_keys(item: dict, source: str) -> None:
    given = [key for key in REGISTRY_KEYS if item.get(key) not in (None, False, "")]
    if given and source != "registry":
        raise ItemProblem(given[0], f"only read with source: registry, but the source is {source}; set source: registry or drop it")


def _check_module_rules(item: dict) -> None:
    if item.get("project_uuid"):
        try:
            check_project_uuid(item["project_uuid"])
        except CollectionError as exc:
            raise ItemProblem("project_uuid", str(exc).removeprefix("project_uuid ")) from None
    if item.get("platform"):
        try:
            parse_platform(item["platform"])
        except CollectionError as exc:
            raise ItemProblem("platform", str(exc).removeprefix("platform ")) from None


def _lower(value: str | int) -> str | int:
    return value.lower() if isinstance(value, str) else value


# The kinds of YAML value, most specific first (a bool is an int); templated values are subclasses of these.
_KINDS = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"), (dict, "dictionary"), (list, "list"))


def _kind(value: t.Any) -> str:
    kind = next((name for base, name in _KINDS if isinstance(value, base)), type(value).__name__)
    shown = repr(value) if kind != "string" else repr(str(value))
    return f"{kind} {shown if len(shown) <= 60 else shown[:57] + '...'}"
