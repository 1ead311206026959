"""Arvados identifiers: cluster id, type infixes, object uuids and portable data hashes."""
from __future__ import annotations

import hashlib
import re
import secrets

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

UUID_RE = re.compile(r"^[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}$")
PDH_RE = re.compile(r"^[0-9a-f]{32}\+[0-9]+$")


def to_base36(number: int) -> str:
    digits = ""
    while number:
        number, remainder = divmod(number, 36)
        digits = _BASE36[remainder] + digits
    return digits or "0"


def type_infix(class_name: str) -> str:
    """The server derives each type's infix from the md5 of its model class name."""
    return to_base36(int(hashlib.md5(class_name.encode()).hexdigest(), 16))[-5:]


CLASS_NAMES = ("User", "Group", "Collection", "Link", "ApiClientAuthorization", "KeepService")
INFIX_BY_CLASS = {name: type_infix(name) for name in CLASS_NAMES}
CLASS_BY_INFIX = {infix: name for name, infix in INFIX_BY_CLASS.items()}

KIND_BY_CLASS = {
    "User": "arvados#user",
    "Group": "arvados#group",
    "Collection": "arvados#collection",
    "Link": "arvados#link",
    "ApiClientAuthorization": "arvados#apiClientAuthorization",
    "KeepService": "arvados#keepService",
}
CLASS_BY_KIND = {kind: name for name, kind in KIND_BY_CLASS.items()}


def random_part() -> str:
    return "".join(secrets.choice(_BASE36) for position in range(15))


def new_uuid(cluster_id: str, class_name: str) -> str:
    return f"{cluster_id}-{INFIX_BY_CLASS[class_name]}-{random_part()}"


def fixed_uuid(cluster_id: str, class_name: str, tail: str) -> str:
    return f"{cluster_id}-{INFIX_BY_CLASS[class_name]}-{tail}"


def class_of(identifier: str | None) -> str | None:
    """The model class an identifier names, as the server's resource_class_for_uuid does."""
    if not isinstance(identifier, str):
        return None
    if UUID_RE.match(identifier):
        return CLASS_BY_INFIX.get(identifier[6:11])
    if re.match(r"^[0-9a-f]{32}(\+[^+]+)*$", identifier):
        return "Collection"
    return None


def kind_of(identifier: str | None) -> str | None:
    class_name = class_of(identifier)
    return KIND_BY_CLASS.get(class_name) if class_name else None


def system_user_uuid(cluster_id: str) -> str:
    return fixed_uuid(cluster_id, "User", "000000000000000")


def system_group_uuid(cluster_id: str) -> str:
    return fixed_uuid(cluster_id, "Group", "000000000000000")


def all_users_group_uuid(cluster_id: str) -> str:
    return fixed_uuid(cluster_id, "Group", "fffffffffffffff")
