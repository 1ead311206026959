"""Groups: projects (which own things and can be trashed with their contents), roles and filter groups."""
from __future__ import annotations

import typing as t

from . import errors, ids, schema
from .cluster import Caller
from .params import attrs_param, bool_param
from .records import TrashableService, apply_trash_rules

GROUP_CLASSES = ("project", "role", "filter")


class GroupService(TrashableService):
    resource = schema.GROUP

    def present(self, caller: Caller, record: dict, listing: bool, select: list[str] | None) -> dict:
        shown = super().present(caller, record, listing, select)
        shown.update(self.sharing_attributes(caller, record))
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
        problems = self.naming_problems(caller, record, changed)
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

    def trash(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any], shorten_delete: bool) -> dict:
        previous = self.find(caller, uuid, self.include_trash(params))
        if previous["group_class"] == "role" and shorten_delete:
            return self.destroy_role(caller, previous, params)
        return self.move_to_trash(caller, previous, params, shorten_delete)

    def destroy_role(self, caller: Caller, record: dict, params: t.Mapping[str, t.Any]) -> dict:
        self.check_owner_permission(caller, record, record["owner_uuid"], is_new=False)
        shown = self.render(caller, record, self.select_param(params))
        with self.db.transaction():
            self.db.delete(self.resource, record["uuid"])
            for row in self.db.rows('SELECT "uuid" FROM links WHERE "link_class" = \'permission\' AND ("head_uuid" = ? OR "tail_uuid" = ?)',
                                    [record["uuid"], record["uuid"]]):
                self.db.delete(schema.LINK, row["uuid"])
        return shown
