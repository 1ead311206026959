"""Groups: projects (which own things and can be trashed with their contents), roles and filter groups."""
from __future__ import annotations

import typing as t

from . import errors, ids, schema, timestamps
from .cluster import Caller
from .params import attrs_param, bool_param
from .permissions import writable_by
from .records import RecordService, apply_trash_rules, check_filesystem_name, etag, name_with_uuid
from .storage import UniqueNameViolation

GROUP_CLASSES = ("project", "role", "filter")


class GroupService(RecordService):
    resource = schema.GROUP
    honours_include_trash = True

    def present(self, caller: Caller, record: dict, listing: bool, select: list[str] | None) -> dict:
        access = caller.require_access()
        shown = {name: record.get(name) for name in self.resource.response_fields if name in record}
        shown["etag"] = etag(record)
        shown["name"] = record["name"] or ""
        links = self.db.rows('SELECT "name", "tail_uuid" FROM links WHERE "link_class" = \'permission\' AND "head_uuid" = ?',
                             [record["uuid"]])
        shown["writable_by"] = writable_by(access, record["uuid"], record["owner_uuid"],
                                           [(row["name"], row["tail_uuid"]) for row in links])
        shown["can_write"] = access.can("write", record["uuid"], record["owner_uuid"])
        shown["can_manage"] = access.can("manage", record["uuid"], record["owner_uuid"])
        return shown

    def render(self, caller: Caller, record: dict, select: list[str] | None = None, listing: bool = False) -> dict:
        shown = super().render(caller, record, select, listing)
        if select and "writable_by" not in select:
            shown.pop("writable_by", None)
        return shown

    def create(self, caller: Caller, params: t.Mapping[str, t.Any]) -> dict:
        attrs = self.clean_attrs(attrs_param(params, self.resource.resource_name))
        if "uuid" in attrs and not caller.is_admin:
            raise errors.invalid("Uuid assignment not permitted")
        record = self.new_record(caller, attrs)
        if attrs.get("uuid") and caller.is_admin:
            record["uuid"] = attrs["uuid"]
        record["properties"] = attrs.get("properties") or {}
        record["is_trashed"] = bool(attrs.get("is_trashed"))
        changed = set(attrs)
        self.validate(caller, record, None, changed)
        self.check_owner_permission(caller, record, None, is_new=True)
        self.insert_with_unique_name(record, bool_param(params, "ensure_unique_name"))
        return self.render(caller, record, self.select_param(params))

    def validate(self, caller: Caller, record: dict, previous: dict | None, changed: set[str]) -> None:
        apply_trash_rules(record, changed, previous, caller.now, self.cluster.settings.trash_lifetime,
                          self.cluster.signing_key.ttl)
        if record.get("name") == "":
            record["name"] = None
        problems = []
        try:
            self.check_references(caller, record, changed)
        except errors.ApiError as failure:
            problems.extend(failure.messages)
        if "name" in changed:
            try:
                check_filesystem_name(record["name"])
            except errors.ApiError as failure:
                problems.extend(failure.messages)
        problems.extend(self.group_class_problems(record, previous))
        if problems:
            raise errors.invalid(*problems)
        if previous is not None and record["owner_uuid"] != previous["owner_uuid"]:
            self.check_ownership_path(record)

    @staticmethod
    def group_class_problems(record: dict, previous: dict | None) -> list[str]:
        problems = []
        group_class = record.get("group_class")
        if group_class not in GROUP_CLASSES:
            shown = "" if group_class is None else group_class
            problems.append(f"Group class value must be one of 'project', 'role' or 'filter', was '{shown}'")
        if previous is not None and previous.get("group_class") is not None and group_class != previous["group_class"]:
            problems.append("Group class cannot be modified after record is created")
        if group_class == "filter":
            filters = (record.get("properties") or {}).get("filters")
            if filters is None:
                problems.append("Properties filters property missing, it must be an array of arrays, each with 3 elements")
            elif not isinstance(filters, list) or not all(isinstance(one, list) and len(one) == 3 for one in filters):
                problems.append("Properties filters property must be an array of arrays, each with 3 elements")
        return problems

    def check_ownership_path(self, record: dict) -> None:
        """Moving a group must not make it (indirectly) its own owner."""
        seen = {record["uuid"]}
        owner = record["owner_uuid"]
        while ids.class_of(owner) == "Group":
            if owner in seen:
                raise errors.invalid("Owner uuid would create an ownership cycle")
            seen.add(owner)
            owner = self.owner_of(owner)
            if owner is None:
                raise errors.invalid("Owner uuid is not owned by any user")

    def insert_with_unique_name(self, record: dict, ensure_unique_name: bool) -> None:
        try:
            self.db.insert(self.resource, record)
        except UniqueNameViolation as clash:
            if not ensure_unique_name or record["name"] is None:
                raise errors.unique_violation(str(clash), record["owner_uuid"], record["name"])
            record["uuid"] = self.cluster.new_uuid(self.resource.class_name)
            record["name"] = name_with_uuid(record["name"], record["uuid"])
            self.db.insert(self.resource, record)

    def update(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        previous = self.find(caller, uuid, self.include_trash(params))
        attrs = attrs_param(params, self.resource.resource_name)
        for ignored in ("kind", "etag", "href"):
            attrs.pop(ignored, None)
        attrs = self.clean_attrs(attrs)
        if "uuid" in attrs and attrs["uuid"] != uuid:
            raise errors.invalid("Uuid change not permitted")
        record = dict(previous)
        record.update({name: value for name, value in attrs.items() if name in self.resource.columns})
        changed = {name for name in attrs if name in self.resource.columns and attrs[name] != previous.get(name)}
        self.validate(caller, record, previous, changed)
        self.check_owner_permission(caller, record, previous["owner_uuid"], is_new=False)
        self.save_changes(caller, previous, record, ensure_unique_name=False)
        return self.render(caller, record, self.select_param(params))

    def save_changes(self, caller: Caller, previous: dict, record: dict, ensure_unique_name: bool) -> None:
        if all(previous.get(name) == value for name, value in record.items()):
            return
        self.touched(record, caller)
        differences = {name: value for name, value in record.items() if previous.get(name) != value}
        try:
            self.db.update(self.resource, record["uuid"], differences)
        except UniqueNameViolation as clash:
            if not ensure_unique_name or record["name"] is None:
                raise errors.unique_violation(str(clash), record["owner_uuid"], record["name"])
            record["name"] = name_with_uuid(record["name"], record["uuid"])
            differences["name"] = record["name"]
            self.db.update(self.resource, record["uuid"], differences)

    def trash(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any], shorten_delete: bool) -> dict:
        previous = self.find(caller, uuid, self.include_trash(params))
        if previous["group_class"] == "role" and shorten_delete:
            return self.destroy_role(caller, previous, params)
        record = dict(previous)
        if not record["is_trashed"]:
            record["trash_at"] = caller.now
            apply_trash_rules(record, {"trash_at"}, previous, caller.now, self.cluster.settings.trash_lifetime,
                              self.cluster.signing_key.ttl)
        if shorten_delete:
            earliest = timestamps.add_seconds(record["trash_at"], self.cluster.signing_key.ttl)
            if record["delete_at"] > earliest:
                record["delete_at"] = earliest
        self.check_owner_permission(caller, record, previous["owner_uuid"], is_new=False)
        self.save_changes(caller, previous, record, ensure_unique_name=False)
        return self.render(caller, record, self.select_param(params))

    def destroy_role(self, caller: Caller, record: dict, params: t.Mapping[str, t.Any]) -> dict:
        self.check_owner_permission(caller, record, record["owner_uuid"], is_new=False)
        shown = self.render(caller, record, self.select_param(params))
        with self.db.transaction():
            self.db.delete(self.resource, record["uuid"])
            for row in self.db.rows('SELECT "uuid" FROM links WHERE "link_class" = \'permission\' AND ("head_uuid" = ? OR "tail_uuid" = ?)',
                                    [record["uuid"], record["uuid"]]):
                self.db.delete(schema.LINK, row["uuid"])
        return shown

    def untrash(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        previous = self.find(caller, uuid, include_trash=True)
        if not previous["is_trashed"]:
            raise errors.invalid_state("Item is not trashed, cannot untrash")
        if previous["delete_at"] and caller.now >= previous["delete_at"]:
            raise errors.invalid_state("delete_at time has already passed, cannot untrash")
        record = dict(previous)
        record.update({"trash_at": None, "delete_at": None, "is_trashed": False})
        self.check_owner_permission(caller, record, previous["owner_uuid"], is_new=False)
        self.save_changes(caller, previous, record, ensure_unique_name=bool_param(params, "ensure_unique_name"))
        return self.render(caller, record, self.select_param(params))
