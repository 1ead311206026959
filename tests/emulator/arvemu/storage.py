"""SQLite storage: one table per resource, a connection per thread, serialised writes, WAL for concurrent reads."""
from __future__ import annotations

import contextlib
import json
import pathlib
import sqlite3
import threading
import typing as t

from . import jsonb
from .filters import BOOLEAN, INTEGER, JSONB_TYPES, Condition
from .schema import RESOURCES, Resource

UNIQUE_NAME_INDEXES = {
    "collections": "index_collections_on_owner_uuid_and_name",
    "groups": "index_groups_on_owner_uuid_and_name",
}


class UniqueNameViolation(Exception):
    """Another live object with this owner already has this name."""


def _column_sql(name: str, kind: str) -> str:
    return f'"{name}" {"INTEGER" if kind in (INTEGER, BOOLEAN) else "TEXT"}'


def _schema_statements(resource: Resource) -> list[str]:
    columns = ", ".join(_column_sql(name, kind) for name, kind in resource.columns.items() if name != "uuid")
    table = resource.table
    statements = [
        f'CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, "uuid" TEXT NOT NULL UNIQUE, {columns})',
        f'CREATE INDEX IF NOT EXISTS {table}_owner ON {table} ("owner_uuid")',
        f'CREATE INDEX IF NOT EXISTS {table}_created ON {table} ("created_at", "uuid")',
    ]
    if table in UNIQUE_NAME_INDEXES:
        statements.append(
            f'CREATE UNIQUE INDEX IF NOT EXISTS {UNIQUE_NAME_INDEXES[table]} ON {table} ("owner_uuid", "name") WHERE "is_trashed" = 0')
    if table == "links":
        statements.append('CREATE INDEX IF NOT EXISTS links_head ON links ("head_uuid")')
        statements.append('CREATE INDEX IF NOT EXISTS links_class_name ON links ("link_class", "name")')
    if table == "collections":
        statements.append('CREATE INDEX IF NOT EXISTS collections_pdh ON collections ("portable_data_hash")')
    if table == "api_client_authorizations":
        statements.append('CREATE INDEX IF NOT EXISTS api_client_authorizations_token ON api_client_authorizations ("api_token")')
    return statements


def encode_value(kind: str, value: t.Any) -> t.Any:
    if value is None:
        return None
    if kind in JSONB_TYPES:
        return json.dumps(value, sort_keys=True)
    if kind == BOOLEAN:
        return int(bool(value))
    return value


def decode_value(kind: str, value: t.Any) -> t.Any:
    if value is None:
        return None
    if kind in JSONB_TYPES:
        return json.loads(value)
    if kind == BOOLEAN:
        return bool(value)
    return value


class Database:
    """The emulator's records. Reads run in parallel; writes go through one lock and one transaction at a time."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._generation = 0
        with self.transaction() as connection:
            for resource in RESOURCES:
                for statement in _schema_statements(resource):
                    connection.execute(statement)
            connection.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    @property
    def generation(self) -> int:
        """Bumped by every write that can change permissions or trash state."""
        return self._generation

    def connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            for name, (arity, function) in jsonb.SQL_FUNCTIONS.items():
                connection.create_function(name, arity, function, deterministic=True)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    @contextlib.contextmanager
    def transaction(self) -> t.Iterator[sqlite3.Connection]:
        connection = self.connection()
        with self._write_lock:
            if connection.in_transaction:
                yield connection
                return
            connection.execute("BEGIN IMMEDIATE")
            self._local.changes_permissions = False
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            # Only after the commit, so no reader can cache the old graph under the new generation.
            if self._local.changes_permissions:
                self._generation += 1

    @staticmethod
    def _decode_row(resource: Resource, row: sqlite3.Row) -> dict:
        return {name: decode_value(resource.columns[name], row[name]) for name in resource.columns}

    def insert(self, resource: Resource, record: t.Mapping[str, t.Any]) -> None:
        names = [name for name in resource.columns if name in record]
        values = [encode_value(resource.columns[name], record[name]) for name in names]
        quoted = ", ".join(f'"{name}"' for name in names)
        sql = f'INSERT INTO {resource.table} ({quoted}) VALUES ({", ".join("?" for name in names)})'
        self._execute_write(resource, sql, values)

    def update(self, resource: Resource, uuid: str, changes: t.Mapping[str, t.Any]) -> None:
        if not changes:
            return
        assignments = ", ".join(f'"{name}" = ?' for name in changes)
        values = [encode_value(resource.columns[name], value) for name, value in changes.items()]
        self._execute_write(resource, f'UPDATE {resource.table} SET {assignments} WHERE "uuid" = ?', [*values, uuid])

    def delete(self, resource: Resource, uuid: str) -> None:
        self._execute_write(resource, f'DELETE FROM {resource.table} WHERE "uuid" = ?', [uuid])

    def _execute_write(self, resource: Resource, sql: str, values: list) -> None:
        with self.transaction() as connection:
            try:
                connection.execute(sql, values)
            except sqlite3.IntegrityError as error:
                if resource.table in UNIQUE_NAME_INDEXES and ".name" in str(error):
                    raise UniqueNameViolation(UNIQUE_NAME_INDEXES[resource.table]) from error
                raise
            if resource.table in ("groups", "links", "users"):
                self._local.changes_permissions = True

    def get(self, resource: Resource, uuid: str) -> dict | None:
        row = self.connection().execute(f'SELECT * FROM {resource.table} WHERE "uuid" = ?', [uuid]).fetchone()
        return self._decode_row(resource, row) if row else None

    def select(self, resource: Resource, where: Condition, order: str = "id ASC",
               limit: int | None = None, offset: int = 0) -> list[dict]:
        sql = f"SELECT * FROM {resource.table}"
        if where:
            sql += f" WHERE {where.sql}"
        sql += f" ORDER BY {order} LIMIT ? OFFSET ?"
        rows = self.connection().execute(sql, [*where.params, -1 if limit is None else limit, offset]).fetchall()
        return [self._decode_row(resource, row) for row in rows]

    def count(self, resource: Resource, where: Condition) -> int:
        sql = f"SELECT count(*) FROM {resource.table}" + (f" WHERE {where.sql}" if where else "")
        return self.connection().execute(sql, where.params).fetchone()[0]

    def rows(self, sql: str, params: t.Sequence[t.Any] = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def setting(self, key: str) -> str | None:
        row = self.connection().execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as connection:
            connection.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               [key, value])
