"""Collections: manifests checked and stored unsigned, signed for each reader, trash and unique names."""
from __future__ import annotations

import typing as t

from . import errors, schema, signing, timestamps
from .cluster import Caller
from .filters import Condition
from .params import attrs_param, bool_param
from .records import TrashableService, and_conditions, apply_trash_rules

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


class CollectionService(TrashableService):
    resource = schema.COLLECTION
    update_defaults = {"preserve_version": False}

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
        shown = super().present(caller, record, listing, select)
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

    def assign_new_uuid(self, record: dict) -> None:
        super().assign_new_uuid(record)
        record["current_version_uuid"] = record["uuid"]

    def validate(self, caller: Caller, record: dict, previous: dict | None, changed: set[str]) -> None:
        """Collection's before_validation and validation steps, in the server's order."""
        apply_trash_rules(record, changed, previous, caller.now, self.cluster.settings.trash_lifetime,
                          self.cluster.signing_key.ttl)
        if not isinstance(record["manifest_text"], str):
            raise errors.invalid("Manifest text must use UTF-8 encoding")
        manifest_changed = "manifest_text" in changed
        if manifest_changed:
            self.check_manifest(caller, record)
        problems = self.naming_problems(caller, record, changed)
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

    # Trash

    def trash(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any], shorten_delete: bool) -> dict:
        return self.move_to_trash(caller, self.find(caller, uuid, include_trash=True), params, shorten_delete)
