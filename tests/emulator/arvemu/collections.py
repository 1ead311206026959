"""Collections: manifests checked and stored unsigned, signed for each reader, trash and unique names."""
from __future__ import annotations

import typing as t

from . import errors, schema, signing, timestamps
from .cluster import Caller
from .filters import Condition
from .params import attrs_param, bool_param
from .records import (RecordService, and_conditions, apply_trash_rules, check_filesystem_name, etag,
                      name_with_uuid)
from .storage import UniqueNameViolation

_CONFIRMED_FIELDS = (
    ("replication_confirmed", "replication_confirmed_at",
     "replication_confirmed and replication_confirmed_at attributes cannot be changed, except by setting both to nil"),
    ("storage_classes_confirmed", "storage_classes_confirmed_at",
     "storage_classes_confirmed and storage_classes_confirmed_at attributes cannot be changed, except by setting them to [] and nil respectively"),
)


def manifest_file_names(manifest: str) -> str:
    names: list[str] = []
    for line in manifest.split("\n"):
        words = line.split()
        names.extend(word.split(":", 2)[2] for word in words[1:] if signing.LOCATOR_RE.match(word) is None and word.count(":") >= 2)
        if words and words[0].startswith("./"):
            names.append(words[0][2:])
    return "".join(name.replace("\\040", " ") + "\n" for name in dict.fromkeys(names))


class CollectionService(RecordService):
    resource = schema.COLLECTION
    honours_include_trash = True

    # Reading

    def show(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        locator = signing.LOCATOR_RE.match(uuid)
        if locator is None:
            return super().show(caller, uuid, params)
        select = self.select_param(params)
        pdh = locator.group(1) + (locator.group(2) or "")
        condition = and_conditions(self.readable(caller, self.include_trash(params)),
                                   Condition('"portable_data_hash" = ?', [pdh]))
        found = self.db.select(self.resource, condition, '"trash_at" DESC NULLS FIRST', limit=1)
        if not found:
            raise errors.not_found()
        return self.render_by_pdh(caller, found[0], select)

    def render_by_pdh(self, caller: Caller, record: dict, select: list[str] | None) -> dict:
        """The controller answers a lookup by portable data hash with a bare record named by the hash."""
        bare: dict[str, t.Any] = {
            "uuid": record["portable_data_hash"], "etag": "", "owner_uuid": "", "trash_at": record["trash_at"],
            "manifest_text": "", "unsigned_manifest_text": "", "name": "", "created_at": None, "modified_at": None,
            "modified_by_user_uuid": "", "portable_data_hash": record["portable_data_hash"], "replication_confirmed": None,
            "replication_confirmed_at": None, "replication_desired": None, "storage_classes_desired": None,
            "storage_classes_confirmed": None, "storage_classes_confirmed_at": None, "delete_at": None,
            "is_trashed": False, "properties": None, "file_count": 0, "file_size_total": 0, "version": 0,
            "preserve_version": False, "current_version_uuid": "", "description": "", "kind": self.resource.kind,
        }
        if not select or "manifest_text" in select:
            bare["manifest_text"] = self.signed_manifest(caller, record["manifest_text"], record["trash_at"], False)
        if select:
            bare = {name: value for name, value in bare.items() if name in set(select) | {"kind", "etag"}}
        return bare

    def present(self, caller: Caller, record: dict, listing: bool, select: list[str] | None) -> dict:
        shown = {name: record.get(name) for name in self.resource.response_fields if name in record}
        shown["etag"] = etag(record)
        shown["name"] = record["name"] or ""
        shown["manifest_text"] = self.signed_manifest(caller, record["manifest_text"], record["trash_at"], record["is_trashed"])
        wants_unsigned = listing or bool(select and "unsigned_manifest_text" in select)
        shown["unsigned_manifest_text"] = record["manifest_text"] if wants_unsigned else ""
        return shown

    def signed_manifest(self, caller: Caller, manifest: str | None, trash_at: str | None, is_trashed: bool) -> str:
        if not manifest or is_trashed or not caller.token:
            return manifest or ""
        expiry = timestamps.unix_seconds(caller.now) + self.cluster.signing_key.ttl
        if trash_at:
            expiry = min(expiry, timestamps.unix_seconds(trash_at))
        return self.cluster.signing_key.sign_manifest(manifest, caller.token, expiry)

    # Writing

    def create(self, caller: Caller, params: t.Mapping[str, t.Any]) -> dict:
        attrs = attrs_param(params, self.resource.resource_name)
        uuid_attr = attrs.pop("uuid", None)
        if uuid_attr is not None:
            locator = signing.LOCATOR_RE.match(str(uuid_attr))
            if locator is None:
                raise errors.invalid("Uuid assignment not permitted")
            attrs["portable_data_hash"] = locator.group(1) + (locator.group(2) or "")
        for ignored in ("version", "current_version_uuid"):
            attrs.pop(ignored, None)
        attrs = self.clean_attrs(attrs)
        record = self.new_record(caller, attrs)
        record.update({
            "manifest_text": attrs.get("manifest_text") or "",
            "properties": attrs.get("properties") or {},
            "storage_classes_desired": attrs.get("storage_classes_desired") or ["default"],
            "storage_classes_confirmed": attrs.get("storage_classes_confirmed") or [],
            "version": 1,
            "current_version_uuid": record["uuid"],
            "preserve_version": bool(attrs.get("preserve_version")),
            "is_trashed": bool(attrs.get("is_trashed")),
        })
        changed = set(attrs) | {"manifest_text"}
        self.validate(caller, record, None, changed)
        self.check_owner_permission(caller, record, None, is_new=True)
        self.insert_with_unique_name(record, bool_param(params, "ensure_unique_name"))
        return self.render(caller, record, self.select_param(params))

    def insert_with_unique_name(self, record: dict, ensure_unique_name: bool) -> None:
        try:
            self.db.insert(self.resource, record)
        except UniqueNameViolation as clash:
            if not ensure_unique_name or record["name"] is None:
                raise errors.unique_violation(str(clash), record["owner_uuid"], record["name"])
            record["uuid"] = self.cluster.new_uuid(self.resource.class_name)
            record["current_version_uuid"] = record["uuid"]
            record["name"] = name_with_uuid(record["name"], record["uuid"])
            self.db.insert(self.resource, record)

    def validate(self, caller: Caller, record: dict, previous: dict | None, changed: set[str]) -> None:
        """Collection's before_validation and validation steps, in the server's order."""
        apply_trash_rules(record, changed, previous, caller.now, self.cluster.settings.trash_lifetime,
                          self.cluster.signing_key.ttl)
        if not isinstance(record["manifest_text"], str):
            raise errors.invalid("Manifest text must use UTF-8 encoding")
        manifest_changed = "manifest_text" in changed
        if manifest_changed:
            self.check_manifest(caller, record)
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
        problems.extend(self.portable_data_hash_problems(record, manifest_changed, "portable_data_hash" in changed))
        if not record.get("storage_classes_desired"):
            problems.append("Storage classes desired must not be empty")
        if problems:
            raise errors.invalid(*problems)
        if manifest_changed:
            record["file_count"], record["file_size_total"] = signing.file_stats(record["manifest_text"])
            record["file_names"] = manifest_file_names(record["manifest_text"])
        elif previous is not None:
            record["file_count"], record["file_size_total"] = previous["file_count"], previous["file_size_total"]
        self.check_confirmed_fields(caller, record, previous)

    def check_manifest(self, caller: Caller, record: dict) -> None:
        try:
            signing.validate_manifest(record["manifest_text"])
        except signing.ManifestError as failure:
            raise errors.invalid(f"Manifest text {failure}")
        if not caller.is_admin:
            try:
                self.cluster.signing_key.check_manifest_signatures(
                    record["manifest_text"], caller.token or "", timestamps.unix_seconds(caller.now))
            except signing.SignatureError:
                raise errors.permission_denied()
        record["manifest_text"] = signing.strip_signatures(record["manifest_text"])

    @staticmethod
    def portable_data_hash_problems(record: dict, manifest_changed: bool, pdh_changed: bool) -> list[str]:
        if not manifest_changed and not pdh_changed:
            return []
        computed = signing.portable_data_hash(record["manifest_text"])
        given = record.get("portable_data_hash")
        record["portable_data_hash"] = computed
        if not pdh_changed or given is None:
            return []
        if not signing.LOCATOR_RE.match(str(given)):
            return ["Portable data hash is not a valid locator"]
        if str(given)[:32] != computed[:32]:
            return [f"Portable data hash '{given}' does not match computed hash '{computed}'"]
        return []

    @staticmethod
    def check_confirmed_fields(caller: Caller, record: dict, previous: dict | None) -> None:
        if caller.is_admin:
            return
        for count_field, time_field, message in _CONFIRMED_FIELDS:
            before = previous or {count_field: None if count_field == "replication_confirmed" else [], time_field: None}
            changed = record.get(count_field) != before.get(count_field) or record.get(time_field) != before.get(time_field)
            cleared = record.get(count_field) in (None, []) and record.get(time_field) is None
            if changed and not cleared:
                raise errors.permission_denied(message)

    def update(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        previous = self.find(caller, uuid, self.include_trash(params))
        attrs = attrs_param(params, self.resource.resource_name)
        for ignored in ("kind", "etag", "href"):
            attrs.pop(ignored, None)
        attrs = self.clean_attrs(attrs)
        if "uuid" in attrs and attrs["uuid"] != uuid:
            raise errors.invalid("Uuid change not permitted")
        attrs.setdefault("preserve_version", False)
        record = dict(previous)
        record.update({name: value for name, value in attrs.items() if name in self.resource.columns})
        changed = {name for name in attrs if name in self.resource.columns and attrs[name] != previous.get(name)}
        self.validate(caller, record, previous, changed)
        self.check_owner_permission(caller, record, previous["owner_uuid"], is_new=False)
        self.save_changes(caller, previous, record, ensure_unique_name=False)
        return self.render(caller, record, self.select_param(params))

    def save_changes(self, caller: Caller, previous: dict, record: dict, ensure_unique_name: bool) -> None:
        differences = {name: value for name, value in record.items() if previous.get(name) != value}
        if not differences:
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

    # Trash

    def trash(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any], shorten_delete: bool) -> dict:
        """DELETE and POST .../trash; DELETE also brings delete_at forward to trash_at + the signing TTL."""
        previous = self.find(caller, uuid, include_trash=True)
        record = dict(previous)
        changed: set[str] = set()
        if not record["is_trashed"]:
            record["trash_at"] = caller.now
            changed.add("trash_at")
            apply_trash_rules(record, changed, previous, caller.now, self.cluster.settings.trash_lifetime,
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
