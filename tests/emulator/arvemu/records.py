"""What every resource shares: readable lookups, list queries, rendering, and the checks on owners and references."""
from __future__ import annotations

import hashlib
import json
import typing as t

from . import errors, ids, permissions, schema, timestamps
from .cluster import Caller, Cluster
from .filters import Condition, FilterError, compile_filters, compile_order, compile_where, order_sql, validate_select
from .params import attrs_param, bool_param
from .schema import Resource
from .storage import UniqueNameViolation

MAX_ITEMS_PER_RESPONSE = 1000
DEFAULT_LIMIT = 100
IGNORED_CREATE_ATTRS = ("kind", "etag", "href", "created_at", "modified_at", "modified_by_user_uuid",
                        "modified_by_client_uuid")


def etag(record: t.Mapping[str, t.Any]) -> str:
    digest = hashlib.md5(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    return ids.to_base36(int(digest, 16))


def and_conditions(*conditions: Condition) -> Condition:
    present = [condition for condition in conditions if condition]
    return Condition(" AND ".join(f"({condition.sql})" for condition in present),
                     [param for condition in present for param in condition.params])


def full_name(user: t.Mapping[str, t.Any]) -> str:
    return " ".join(part for part in (user.get("first_name"), user.get("last_name")) if part)


class RecordService:
    """Read paths common to all resources; subclasses add writes and their own attributes."""

    resource: Resource = schema.COLLECTION
    honours_include_trash = False

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.db = cluster.db

    # Reading

    def readable(self, caller: Caller, include_trash: bool = False) -> Condition:
        access = caller.require_access()
        return permissions.readable_condition(access, self.resource.table, include_trash, caller.now)

    def find(self, caller: Caller, uuid: str, include_trash: bool = False) -> dict:
        condition = and_conditions(self.readable(caller, include_trash), Condition('"uuid" = ?', [uuid]))
        found = self.db.select(self.resource, condition, limit=1)
        if not found:
            raise errors.not_found()
        return found[0]

    def include_trash(self, params: t.Mapping[str, t.Any]) -> bool:
        return self.honours_include_trash and bool_param(params, "include_trash")

    def show(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        select = self.select_param(params)
        record = self.find(caller, uuid, self.include_trash(params))
        return self.render(caller, record, select)

    def index(self, caller: Caller, params: t.Mapping[str, t.Any]) -> dict:
        caller.require_access()
        limit, offset = self.limit_offset(params)
        raw_select = params.get("select")
        try:
            condition = and_conditions(
                self.readable(caller, self.include_trash(params)),
                compile_filters(params.get("filters"), self.resource.shape),
                compile_where(params.get("where"), self.resource.shape))
            select = validate_select(raw_select, self.resource.selectable, self.resource.shape)
            orders = compile_order(params.get("order"), self.resource.shape, select)
        except FilterError as failure:
            raise errors.argument_error(str(failure))
        count = params.get("count")
        if count not in (None, "", "exact", "none"):
            raise errors.argument_error("count parameter must be 'exact' or 'none'")
        records = self.db.select(self.resource, condition, order_sql(orders), limit, offset)
        response = {
            "kind": self.resource.list_kind,
            "etag": "",
            "offset": offset,
            "limit": limit,
            "items": [self.render(caller, record, select, listing=True) for record in records],
        }
        if count != "none":
            response["items_available"] = self.db.count(self.resource, condition)
        return response

    @staticmethod
    def limit_offset(params: t.Mapping[str, t.Any]) -> tuple[int, int]:
        limit = params.get("limit")
        if limit is None or (isinstance(limit, int) and limit < 0):
            limit = DEFAULT_LIMIT
        offset = params.get("offset") or 0
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise errors.argument_error("Invalid value for limit parameter")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise errors.argument_error("Invalid value for offset parameter")
        return min(limit, MAX_ITEMS_PER_RESPONSE), offset

    def select_param(self, params: t.Mapping[str, t.Any]) -> list[str] | None:
        try:
            return validate_select(params.get("select"), self.resource.selectable, self.resource.shape)
        except FilterError as failure:
            raise errors.argument_error(str(failure))

    # Rendering

    def present(self, caller: Caller, record: dict, listing: bool, select: list[str] | None) -> dict:
        """All response attributes of one record, before select applies."""
        shown = {name: record.get(name) for name in self.resource.response_fields if name in record}
        shown["etag"] = etag(record)
        return shown

    def sharing_attributes(self, caller: Caller, record: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """Who may write the record and what the caller may do with it, as users and groups show them."""
        access = caller.require_access()
        links = self.db.rows('SELECT "name", "tail_uuid" FROM links WHERE "link_class" = \'permission\' AND "head_uuid" = ?',
                             [record["uuid"]])
        return {
            "writable_by": permissions.writable_by(access, record["uuid"], record["owner_uuid"],
                                                   [(row["name"], row["tail_uuid"]) for row in links]),
            "can_write": access.can("write", record["uuid"], record["owner_uuid"]),
            "can_manage": access.can("manage", record["uuid"], record["owner_uuid"]),
        }

    def render(self, caller: Caller, record: dict, select: list[str] | None = None, listing: bool = False) -> dict:
        shown = self.present(caller, record, listing, select)
        shown["kind"] = self.resource.kind
        if select:
            kept = set(select) | {"kind", "etag"}
            shown = {name: value for name, value in shown.items() if name in kept}
        return shown

    # Writing

    def new_record(self, caller: Caller, attrs: t.Mapping[str, t.Any]) -> dict:
        record: dict[str, t.Any] = {name: None for name in self.resource.columns}
        record.update({
            "uuid": self.cluster.new_uuid(self.resource.class_name),
            "owner_uuid": caller.user_uuid,
            "created_at": caller.now,
            "modified_at": caller.now,
            "modified_by_user_uuid": caller.user_uuid,
        })
        record.update({name: value for name, value in attrs.items() if name in self.resource.columns and name != "uuid"})
        if record["owner_uuid"] is None:
            record["owner_uuid"] = caller.user_uuid
        return record

    def clean_attrs(self, attrs: t.Mapping[str, t.Any], allowed: t.Iterable[str] = ()) -> dict:
        """Drops what the server ignores and rejects attributes the model does not have."""
        cleaned = {name: value for name, value in attrs.items() if name not in IGNORED_CREATE_ATTRS}
        permitted = set(self.resource.writable) | set(allowed)
        for name in cleaned:
            if name not in permitted:
                raise errors.invalid(errors.inspect_exception(
                    "ActiveModel::UnknownAttributeError", f"unknown attribute '{name}' for {self.resource.class_name}."))
        for name, value in cleaned.items():
            kind = self.resource.columns.get(name)
            if kind == "jsonb_hash" and value is not None and not isinstance(value, dict):
                raise errors.invalid(errors.inspect_exception("TypeError", f"parameter {name} must be a Hash"))
            if kind == "jsonb_array" and value is not None and not isinstance(value, list):
                raise errors.argument_error(f"{name} parameter must be Array, not {type(value).__name__}")
        return cleaned

    def update_attrs(self, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        """The cleaned attributes of an update; repeating the record's own uuid is allowed, changing it is not."""
        attrs = self.clean_attrs(attrs_param(params, self.resource.resource_name))
        if "uuid" in attrs and attrs["uuid"] != uuid:
            raise errors.invalid("Uuid change not permitted")
        return attrs

    def merged_update(self, previous: t.Mapping[str, t.Any], attrs: t.Mapping[str, t.Any]) -> tuple[dict, set[str]]:
        """The record as the update would leave it, and the names of the columns whose values it changes."""
        record = dict(previous)
        record.update({name: value for name, value in attrs.items() if name in self.resource.columns})
        changed = {name for name in attrs if name in self.resource.columns and attrs[name] != previous.get(name)}
        return record, changed

    def check_references(self, caller: Caller, record: t.Mapping[str, t.Any], changed: t.Iterable[str]) -> None:
        """ensure_valid_uuids: every changed *_uuid attribute must name something the caller can read."""
        problems = []
        for name in changed:
            if not name.endswith("_uuid") or name == "modified_by_user_uuid":
                continue
            value = record.get(name)
            if value is None or value == self.cluster.settings.system_user_uuid:
                continue
            if not self.reference_readable(caller, value):
                problems.append(f"{name.replace('_', ' ').capitalize()} '{value}' not found")
        if problems:
            raise errors.invalid(*problems)

    def reference_readable(self, caller: Caller, value: str) -> bool:
        # resource_class_for_uuid (arvados_model.rb) knows only uuids: the portable data hashes that
        # docker_image_migration links carry as head and tail are not checked.
        if not ids.UUID_RE.match(value):
            return True
        class_name = ids.class_of(value)
        if class_name is None:
            return True
        resource = schema.BY_CLASS.get(class_name)
        if resource is None:
            return False
        condition = and_conditions(
            permissions.readable_condition(caller.require_access(), resource.table, False, caller.now),
            Condition('"uuid" = ?', [value]))
        return self.db.count(resource, condition) > 0

    def check_owner_permission(self, caller: Caller, record: t.Mapping[str, t.Any], old_owner: str | None,
                               is_new: bool) -> None:
        """ensure_owner_uuid_is_permitted, with the server's 403 messages."""
        access = caller.require_access()
        owner_uuid = record.get("owner_uuid")
        if owner_uuid is None:
            raise errors.permission_denied("Owner uuid cannot be nil")
        owner_class = ids.class_of(owner_uuid)
        if owner_class not in ("User", "Group"):
            raise errors.permission_denied("Owner uuid must be set to User or Group")
        if is_new or owner_uuid != old_owner:
            for which, check_uuid in (("old", None if is_new else old_owner), ("new", owner_uuid)):
                if check_uuid is None:
                    continue
                if not self.can_write_uuid(access, check_uuid):
                    raise errors.permission_denied(
                        f"Owner uuid cannot be set or changed without write permission on {which} owner")
                if owner_class == "Group" and self.group_class(owner_uuid) != "project":
                    raise errors.permission_denied("Owner uuid must be a project")
        elif not self.can_write_uuid(access, record["uuid"], old_owner):
            raise errors.permission_denied(f"Uuid  {record['uuid']} is not writable by {caller.user_uuid}")

    def can_write_uuid(self, access: permissions.Access, uuid: str, owner_uuid: str | None = None) -> bool:
        if owner_uuid is None:
            owner_uuid = self.owner_of(uuid)
        return access.can("write", uuid, owner_uuid)

    def owner_of(self, uuid: str) -> str | None:
        resource = schema.BY_CLASS.get(ids.class_of(uuid) or "")
        if resource is None:
            return None
        rows = self.db.rows(f'SELECT "owner_uuid" FROM {resource.table} WHERE "uuid" = ?', [uuid])
        return rows[0]["owner_uuid"] if rows else None

    def group_class(self, uuid: str) -> str | None:
        rows = self.db.rows('SELECT "group_class" FROM groups WHERE "uuid" = ?', [uuid])
        return rows[0]["group_class"] if rows else None

    @staticmethod
    def touched(record: dict, caller: Caller) -> None:
        record["modified_at"] = caller.now
        record["modified_by_user_uuid"] = caller.user_uuid


def apply_trash_rules(record: dict, changed: set[str], previous: t.Mapping[str, t.Any] | None, now: str,
                      trash_lifetime: int, signing_ttl: int) -> None:
    """Trashable: trash_at never in the past, is_trashed follows trash_at, delete_at defaults after trash_at."""
    if "trash_at" in changed and record.get("trash_at"):
        record["trash_at"] = max(timestamps.normalize_timestamp(record["trash_at"]), now)
    if "delete_at" in changed and record.get("delete_at"):
        record["delete_at"] = timestamps.normalize_timestamp(record["delete_at"])
    if "is_trashed" in changed and "trash_at" not in changed:
        if record.get("is_trashed"):
            record["trash_at"] = now
            changed.add("trash_at")
        else:
            record["trash_at"] = None
            record["delete_at"] = None
    record["is_trashed"] = bool(record.get("trash_at") and record["trash_at"] <= now)
    if "trash_at" in changed and "delete_at" not in changed:
        record["delete_at"] = (timestamps.add_seconds(record["trash_at"], trash_lifetime)
                               if record.get("trash_at") else None)
    elif "delete_at" in changed and record.get("trash_at") and record.get("delete_at") and record["delete_at"] >= record["trash_at"]:
        earliest = min(value for value in (now, (previous or {}).get("trash_at")) if value)
        earliest = timestamps.add_seconds(earliest, signing_ttl)
        if previous and previous.get("delete_at"):
            earliest = min(earliest, previous["delete_at"])
        record["delete_at"] = max(record["delete_at"], earliest)
    if (record.get("trash_at") is None) != (record.get("delete_at") is None):
        raise errors.invalid("Delete at must be set if trash_at is set, and must be nil otherwise")
    if record.get("delete_at") and record["delete_at"] < record["trash_at"]:
        raise errors.invalid("Delete at must not be earlier than trash_at")


def name_with_uuid(name: str, uuid: str) -> str:
    """add_uuid_to_name: the first 237 characters, then the uuid's random part in parentheses."""
    return f"{name[:237]} ({uuid[-15:]})"


def check_filesystem_name(name: str | None) -> None:
    if name in (".", ".."):
        raise errors.invalid("Name cannot be '.' or '..'")
    if name is not None and "/" in name:
        raise errors.invalid("Name cannot contain a '/' character")


class TrashableService(RecordService):
    """Projects and collections: named uniquely within their owner, trashed and untrashed, updated alike."""

    honours_include_trash = True
    # Attributes an update sets when the request leaves them out.
    update_defaults: t.Mapping[str, t.Any] = {}

    def present(self, caller: Caller, record: dict, listing: bool, select: list[str] | None) -> dict:
        shown = super().present(caller, record, listing, select)
        shown["name"] = record["name"] or ""
        return shown

    def validate(self, caller: Caller, record: dict, previous: dict | None, changed: set[str]) -> None:
        raise NotImplementedError

    def naming_problems(self, caller: Caller, record: dict, changed: set[str]) -> list[str]:
        """An empty name counts as none; then the reference and file system name checks, collected rather than raised."""
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
        return problems

    def assign_new_uuid(self, record: dict) -> None:
        record["uuid"] = self.cluster.new_uuid(self.resource.class_name)

    def insert_with_unique_name(self, record: dict, ensure_unique_name: bool) -> None:
        try:
            self.db.insert(self.resource, record)
        except UniqueNameViolation as clash:
            if not ensure_unique_name or record["name"] is None:
                raise errors.unique_violation(str(clash), record["owner_uuid"], record["name"])
            self.assign_new_uuid(record)
            record["name"] = name_with_uuid(record["name"], record["uuid"])
            self.db.insert(self.resource, record)

    def update(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        previous = self.find(caller, uuid, self.include_trash(params))
        attrs = self.update_attrs(uuid, params)
        for name, value in self.update_defaults.items():
            attrs.setdefault(name, value)
        record, changed = self.merged_update(previous, attrs)
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

    def move_to_trash(self, caller: Caller, previous: dict, params: t.Mapping[str, t.Any], shorten_delete: bool) -> dict:
        """DELETE and POST .../trash; DELETE also brings delete_at forward to trash_at + the signing TTL."""
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
