"""Links: typed edges between objects; permission links grant access and are owned by the system user."""
from __future__ import annotations

import typing as t

from . import errors, ids, permissions, schema
from .cluster import Caller
from .params import attrs_param
from .records import RecordService


class LinkService(RecordService):
    resource = schema.LINK

    def present(self, caller: Caller, record: dict, listing: bool, select: list[str] | None) -> dict:
        shown = super().present(caller, record, listing, select)
        shown["head_kind"] = ids.kind_of(record["head_uuid"])
        shown["tail_kind"] = ids.kind_of(record["tail_uuid"])
        return shown

    def create(self, caller: Caller, params: t.Mapping[str, t.Any]) -> dict:
        attrs = self.clean_attrs(attrs_param(params, self.resource.resource_name))
        if "uuid" in attrs:
            raise errors.invalid("Uuid assignment not permitted")
        record = self.new_record(caller, attrs)
        record["properties"] = attrs.get("properties") or {}
        self.validate(caller, record, set(attrs))
        self.check_link_owner(caller, record, None, is_new=True)
        with self.db.transaction():
            self.keep_strongest_permission(record)
            self.db.insert(self.resource, record)
        return self.render(caller, record, self.select_param(params))

    def validate(self, caller: Caller, record: dict, changed: set[str]) -> None:
        problems = []
        try:
            self.check_references(caller, record, changed)
        except errors.ApiError as failure:
            problems.extend(failure.messages)
        if record.get("link_class") == "name":
            problems.append("Name Name links are obsolete")
        if record.get("link_class") == "permission":
            problems.extend(self.permission_problems(record))
        if problems:
            raise errors.invalid(*problems)

    def permission_problems(self, record: dict) -> list[str]:
        if record.get("name") not in permissions.PERMISSION_NAMES:
            return ["Name is invalid permission, must be one of 'can_read', 'can_write', 'can_manage', 'can_login'"]
        tail_class = ids.class_of(record.get("tail_uuid"))
        if tail_class == "Group":
            group_class = self.group_class(record["tail_uuid"])
            if group_class is None:
                return ["Tail uuid does not exist"]
            if group_class != "role":
                return [f"Tail uuid must be a user or role, was group with group_class {group_class}"]
        elif tail_class != "User":
            return ["Tail uuid must be a user or role"]
        if self.owner_of(record.get("head_uuid") or "") is None and ids.class_of(record.get("head_uuid")) != "User":
            return ["Head uuid does not exist"]
        return []

    def check_link_owner(self, caller: Caller, record: dict, previous: dict | None, is_new: bool) -> None:
        """Permission links need can_manage on their head and always belong to the system user."""
        if record.get("link_class") == "permission" or (previous and previous["link_class"] == "permission"):
            access = caller.require_access()
            head = record.get("head_uuid")
            if not access.can("manage", head, self.owner_of(head or "")):
                raise errors.permission_denied()
            record["owner_uuid"] = self.cluster.settings.system_user_uuid
            return
        self.check_owner_permission(caller, record, None if previous is None else previous["owner_uuid"], is_new)

    def keep_strongest_permission(self, record: dict) -> None:
        """A new permission link takes the highest level among links with the same tail and head, which it replaces."""
        if record.get("link_class") != "permission" or record.get("name") not in permissions.LEVEL_BY_LINK_NAME:
            return
        ranked = ("can_read", "can_write", "can_manage")
        others = self.db.rows(
            'SELECT "uuid", "name" FROM links WHERE "link_class" = \'permission\' AND "tail_uuid" = ? AND "head_uuid" = ?'
            ' AND "name" IN (\'can_read\', \'can_write\', \'can_manage\') AND "uuid" != ?',
            [record["tail_uuid"], record["head_uuid"], record["uuid"]])
        for other in others:
            if record["name"] in ranked and ranked.index(other["name"]) > ranked.index(record["name"]):
                record["name"] = other["name"]
            self.db.delete(self.resource, other["uuid"])

    def update(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        previous = self.find(caller, uuid)
        record, changed = self.merged_update(previous, self.update_attrs(uuid, params))
        self.validate(caller, record, changed)
        if previous["link_class"] == "permission" and changed & {"link_class", "tail_uuid", "head_uuid"}:
            raise errors.invalid(errors.inspect_exception("RuntimeError", "Can only alter permission link level"))
        self.check_link_owner(caller, record, previous, is_new=False)
        if all(previous.get(name) == value for name, value in record.items()):
            return self.render(caller, record, self.select_param(params))
        self.touched(record, caller)
        with self.db.transaction():
            self.keep_strongest_permission(record)
            self.db.update(self.resource, uuid, {name: value for name, value in record.items() if previous.get(name) != value})
        return self.render(caller, record, self.select_param(params))

    def delete(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        record = self.find(caller, uuid)
        self.check_link_owner(caller, dict(record), record, is_new=False)
        shown = self.render(caller, record, self.select_param(params))
        self.db.delete(self.resource, uuid)
        return shown
