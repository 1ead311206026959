"""Users, API tokens and Keep service records."""
from __future__ import annotations

import typing as t

from . import errors, schema
from .cluster import Caller
from .filters import Condition
from .params import attrs_param
from .records import RecordService, and_conditions, full_name


class UserService(RecordService):
    resource = schema.USER

    def current(self, caller: Caller, params: t.Mapping[str, t.Any]) -> dict:
        if caller.user is None:
            raise errors.not_logged_in()
        return self.render(caller, caller.user, self.select_param(params))

    def present(self, caller: Caller, record: dict, listing: bool, select: list[str] | None) -> dict:
        shown = super().present(caller, record, listing, select)
        shown["full_name"] = full_name(record)
        shown["is_invited"] = True
        shown.update(self.sharing_attributes(caller, record))
        return shown


class TokenService(RecordService):
    resource = schema.API_CLIENT_AUTHORIZATION

    def readable(self, caller: Caller, include_trash: bool = False) -> Condition:
        if caller.require_access().is_admin:
            return Condition("", [])
        return Condition('"owner_uuid" = ?', [caller.user_uuid])

    def present(self, caller: Caller, record: dict, listing: bool, select: list[str] | None) -> dict:
        shown = super().present(caller, record, listing, select)
        shown.update({"created_by_ip_address": "127.0.0.1", "last_used_at": None, "last_used_by_ip_address": None})
        return shown

    def current(self, caller: Caller, params: t.Mapping[str, t.Any]) -> dict:
        token = caller.token or ""
        record = self.cluster.find_token(token, caller.now) if caller.user else None
        if record is None:
            raise errors.not_logged_in()
        return self.render(caller, record, self.select_param(params))

    def create(self, caller: Caller, params: t.Mapping[str, t.Any]) -> dict:
        attrs = self.clean_attrs(attrs_param(params, self.resource.resource_name))
        owner_uuid = attrs.get("owner_uuid") or caller.user_uuid
        if owner_uuid != caller.user_uuid and not caller.is_admin:
            raise errors.permission_denied()
        expires_at = attrs.get("expires_at")
        record = self.cluster.mint_token(owner_uuid, expires_at, attrs.get("scopes"))
        return self.render(caller, record, self.select_param(params))

    def delete(self, caller: Caller, uuid: str, params: t.Mapping[str, t.Any]) -> dict:
        record = self.find(caller, uuid)
        shown = self.render(caller, record, self.select_param(params))
        self.db.delete(self.resource, uuid)
        return shown

    def find(self, caller: Caller, uuid: str, include_trash: bool = False) -> dict:
        found = self.db.select(self.resource, and_conditions(self.readable(caller), Condition('"uuid" = ?', [uuid])), limit=1)
        if not found:
            raise errors.not_found()
        return found[0]


class KeepServiceService(RecordService):
    resource = schema.KEEP_SERVICE

    def readable(self, caller: Caller, include_trash: bool = False) -> Condition:
        caller.require_access()
        return Condition("", [])

    def accessible(self, caller: Caller, params: t.Mapping[str, t.Any]) -> dict:
        caller.require_access()
        records = self.db.select(self.resource, Condition('"service_type" = ?', ["disk"]))
        return {"kind": self.resource.list_kind, "etag": "", "offset": 0, "limit": len(records),
                "items": [self.render(caller, record) for record in records], "items_available": len(records)}
