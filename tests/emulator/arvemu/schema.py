"""The resources the emulator stores: their columns (with filter types) and the attributes responses carry."""
from __future__ import annotations

import dataclasses
import typing as t

from . import ids
from .filters import BOOLEAN, DATETIME, INTEGER, JSONB_ARRAY, JSONB_HASH, STRING, TEXT, TableShape

_COMMON_COLUMNS = {
    "uuid": STRING,
    "owner_uuid": STRING,
    "created_at": DATETIME,
    "modified_at": DATETIME,
    "modified_by_user_uuid": STRING,
}
_COMMON_FIELDS = ("kind", "etag", "uuid", "owner_uuid", "created_at", "modified_by_user_uuid", "modified_at")


@dataclasses.dataclass(frozen=True)
class Resource:
    """One Arvados model: a table, its API name, and which attributes exist where."""
    class_name: str
    table: str
    resource_name: str
    columns: t.Mapping[str, str]
    response_fields: tuple[str, ...]
    selectable: tuple[str, ...]
    unsearchable: frozenset[str] = frozenset()
    hidden_columns: frozenset[str] = frozenset()
    writable: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        return ids.KIND_BY_CLASS[self.class_name]

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def infix(self) -> str:
        return ids.INFIX_BY_CLASS[self.class_name]

    @property
    def shape(self) -> TableShape:
        return TableShape(self.table, self.class_name, dict(self.columns), self.unsearchable)


COLLECTION = Resource(
    class_name="Collection",
    table="collections",
    resource_name="collection",
    columns={
        **_COMMON_COLUMNS,
        "name": STRING,
        "description": TEXT,
        "properties": JSONB_HASH,
        "portable_data_hash": STRING,
        "manifest_text": TEXT,
        "replication_desired": INTEGER,
        "replication_confirmed": INTEGER,
        "replication_confirmed_at": DATETIME,
        "storage_classes_desired": JSONB_ARRAY,
        "storage_classes_confirmed": JSONB_ARRAY,
        "storage_classes_confirmed_at": DATETIME,
        "delete_at": DATETIME,
        "trash_at": DATETIME,
        "is_trashed": BOOLEAN,
        "version": INTEGER,
        "current_version_uuid": STRING,
        "preserve_version": BOOLEAN,
        "file_count": INTEGER,
        "file_size_total": INTEGER,
        "file_names": TEXT,
    },
    response_fields=(
        "uuid", "etag", "owner_uuid", "trash_at", "manifest_text", "unsigned_manifest_text", "name", "created_at",
        "modified_at", "modified_by_user_uuid", "portable_data_hash", "replication_confirmed", "replication_confirmed_at",
        "replication_desired", "storage_classes_desired", "storage_classes_confirmed", "storage_classes_confirmed_at",
        "delete_at", "is_trashed", "properties", "file_count", "file_size_total", "version", "preserve_version",
        "current_version_uuid", "description"),
    selectable=_COMMON_FIELDS + (
        "name", "description", "properties", "portable_data_hash", "unsigned_manifest_text", "manifest_text",
        "replication_desired", "replication_confirmed", "replication_confirmed_at", "storage_classes_desired",
        "storage_classes_confirmed", "storage_classes_confirmed_at", "delete_at", "trash_at", "is_trashed", "version",
        "current_version_uuid", "preserve_version", "file_count", "file_size_total"),
    unsearchable=frozenset({"manifest_text"}),
    hidden_columns=frozenset({"file_names"}),
    writable=frozenset({
        "uuid", "owner_uuid", "name", "description", "properties", "portable_data_hash", "manifest_text",
        "replication_desired", "replication_confirmed", "replication_confirmed_at", "storage_classes_desired",
        "storage_classes_confirmed", "storage_classes_confirmed_at", "delete_at", "trash_at", "is_trashed",
        "preserve_version", "file_count", "file_size_total"}),
)

GROUP = Resource(
    class_name="Group",
    table="groups",
    resource_name="group",
    columns={
        **_COMMON_COLUMNS,
        "name": STRING,
        "group_class": STRING,
        "description": TEXT,
        "properties": JSONB_HASH,
        "trash_at": DATETIME,
        "delete_at": DATETIME,
        "is_trashed": BOOLEAN,
        "frozen_by_uuid": STRING,
    },
    response_fields=(
        "uuid", "name", "owner_uuid", "group_class", "etag", "trash_at", "created_at", "modified_at",
        "modified_by_user_uuid", "delete_at", "is_trashed", "properties", "writable_by", "description",
        "frozen_by_uuid", "can_write", "can_manage"),
    selectable=_COMMON_FIELDS + (
        "name", "group_class", "description", "writable_by", "delete_at", "trash_at", "is_trashed", "properties",
        "frozen_by_uuid", "can_write", "can_manage"),
    writable=frozenset({
        "uuid", "owner_uuid", "name", "group_class", "description", "properties", "trash_at", "delete_at",
        "is_trashed", "frozen_by_uuid"}),
)

LINK = Resource(
    class_name="Link",
    table="links",
    resource_name="link",
    columns={
        **_COMMON_COLUMNS,
        "tail_uuid": STRING,
        "link_class": STRING,
        "name": STRING,
        "head_uuid": STRING,
        "properties": JSONB_HASH,
    },
    response_fields=(
        "uuid", "etag", "owner_uuid", "name", "link_class", "created_at", "modified_at", "modified_by_user_uuid",
        "head_uuid", "head_kind", "tail_uuid", "tail_kind", "properties"),
    selectable=_COMMON_FIELDS + ("tail_uuid", "link_class", "name", "head_uuid", "head_kind", "tail_kind", "properties"),
    writable=frozenset({"uuid", "owner_uuid", "tail_uuid", "link_class", "name", "head_uuid", "properties"}),
)

USER = Resource(
    class_name="User",
    table="users",
    resource_name="user",
    columns={
        **_COMMON_COLUMNS,
        "email": STRING,
        "username": STRING,
        "first_name": STRING,
        "last_name": STRING,
        "identity_url": STRING,
        "is_active": BOOLEAN,
        "is_admin": BOOLEAN,
        "prefs": JSONB_HASH,
    },
    response_fields=(
        "uuid", "etag", "is_active", "is_admin", "username", "email", "full_name", "first_name", "last_name",
        "is_invited", "identity_url", "prefs", "owner_uuid", "created_at", "modified_at", "modified_by_user_uuid",
        "writable_by", "can_write", "can_manage"),
    selectable=_COMMON_FIELDS + (
        "email", "username", "full_name", "first_name", "last_name", "identity_url", "is_active", "is_admin",
        "is_invited", "prefs", "writable_by", "can_write", "can_manage"),
    writable=frozenset({"first_name", "last_name", "prefs"}),
)

API_CLIENT_AUTHORIZATION = Resource(
    class_name="ApiClientAuthorization",
    table="api_client_authorizations",
    resource_name="api_client_authorization",
    columns={
        **_COMMON_COLUMNS,
        "api_token": STRING,
        "expires_at": DATETIME,
        "scopes": JSONB_ARRAY,
    },
    response_fields=(
        "uuid", "etag", "api_token", "created_at", "created_by_ip_address", "expires_at", "last_used_at",
        "last_used_by_ip_address", "modified_at", "modified_by_user_uuid", "owner_uuid", "scopes"),
    selectable=_COMMON_FIELDS + ("api_token", "expires_at", "scopes"),
    writable=frozenset({"owner_uuid", "expires_at", "scopes"}),
)

KEEP_SERVICE = Resource(
    class_name="KeepService",
    table="keep_services",
    resource_name="keep_service",
    columns={
        **_COMMON_COLUMNS,
        "service_host": STRING,
        "service_port": INTEGER,
        "service_ssl_flag": BOOLEAN,
        "service_type": STRING,
        "read_only": BOOLEAN,
    },
    response_fields=(
        "uuid", "service_host", "service_port", "service_ssl_flag", "service_type", "read_only", "created_at",
        "modified_at"),
    selectable=_COMMON_FIELDS + ("service_host", "service_port", "service_ssl_flag", "service_type", "read_only"),
)

RESOURCES = (COLLECTION, GROUP, LINK, USER, API_CLIENT_AUTHORIZATION, KEEP_SERVICE)
BY_TABLE = {resource.table: resource for resource in RESOURCES}
BY_CLASS = {resource.class_name: resource for resource in RESOURCES}
