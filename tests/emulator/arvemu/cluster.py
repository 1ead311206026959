"""The emulated cluster: settings, identities, authentication and each caller's permissions."""
from __future__ import annotations

import dataclasses
import secrets
import threading
import typing as t

from . import errors, ids, permissions, timestamps
from .filters import Condition
from .permissions import Access, Edge
from .schema import API_CLIENT_AUTHORIZATION, GROUP, KEEP_SERVICE, LINK, USER
from .signing import SigningKey
from .storage import Database

DEFAULT_TRASH_LIFETIME = 1209600
DEMO_USERS = (
    ("admin", "Admin", "User", True),
    ("alice", "Alice", "Example", False),
    ("bob", "Bob", "Example", False),
)


@dataclasses.dataclass
class Settings:
    """Cluster-wide configuration; docker_image_formats may change while the server runs."""
    cluster_id: str
    signing_key: SigningKey
    docker_image_formats: list[str]
    default_replication: int = 2
    trash_lifetime: int = DEFAULT_TRASH_LIFETIME
    keep_host: str = "127.0.0.1"
    keep_port: int = 0

    @property
    def system_user_uuid(self) -> str:
        return ids.system_user_uuid(self.cluster_id)


@dataclasses.dataclass
class Caller:
    """Who is asking, and when: one per request."""
    request_id: str
    now: str
    token: str | None = None
    user: dict | None = None
    access: Access | None = None

    @property
    def user_uuid(self) -> str:
        return self.user["uuid"] if self.user else ""

    @property
    def is_admin(self) -> bool:
        return bool(self.user and self.user["is_admin"])

    def require_access(self) -> Access:
        if self.access is None:
            raise errors.not_logged_in()
        return self.access


def new_secret() -> str:
    return "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for position in range(50))


def full_token(token_record: t.Mapping[str, t.Any]) -> str:
    return f"v2/{token_record['uuid']}/{token_record['api_token']}"


class PermissionIndex:
    """Caches the permission graph until a user, group or link changes."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._generation = -1
        self._edges: list[Edge] = []
        self._groups: list[tuple[str, str, str | None]] = []
        self._grants: dict[str, dict] = {}

    def _refresh(self) -> None:
        generation = self._db.generation
        if generation == self._generation:
            return
        groups = [(row["uuid"], row["owner_uuid"], row["trash_at"]) for row in self._db.rows(
            'SELECT "uuid", "owner_uuid", "trash_at" FROM groups')]
        edges = [Edge(owner, uuid, permissions.MANAGE) for uuid, owner, trash_at in groups]
        for row in self._db.rows('SELECT "uuid", "owner_uuid" FROM users'):
            edges.append(Edge(row["owner_uuid"], row["uuid"], permissions.MANAGE))
            edges.append(Edge(row["uuid"], row["uuid"], permissions.MANAGE))
        for row in self._db.rows('SELECT "tail_uuid", "head_uuid", "name" FROM links WHERE "link_class" = \'permission\''):
            edges.append(Edge(row["tail_uuid"], row["head_uuid"], permissions.LEVEL_BY_LINK_NAME.get(row["name"], 0)))
        self._edges, self._groups, self._grants, self._generation = edges, groups, {}, generation

    def access_for(self, user: t.Mapping[str, t.Any], now: str) -> Access:
        with self._lock:
            self._refresh()
            grants = self._grants.get(user["uuid"])
            if grants is None:
                grants = permissions.merged_grants(user["uuid"], self._edges)
                self._grants[user["uuid"]] = grants
            trashed = permissions.trashed_groups(self._groups, now)
        return Access(user["uuid"], bool(user["is_admin"]), grants, trashed)


class Cluster:
    """Everything requests share: settings, the database and the permission index."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.permissions = PermissionIndex(db)

    @property
    def signing_key(self) -> SigningKey:
        return self.settings.signing_key

    def new_uuid(self, class_name: str) -> str:
        return ids.new_uuid(self.settings.cluster_id, class_name)

    def caller(self, request_id: str, token: str | None) -> Caller:
        """Resolves a bearer token; a missing, unknown or expired token leaves the caller anonymous."""
        caller = Caller(request_id=request_id, now=timestamps.now_timestamp(), token=token)
        token_record = self.find_token(token, caller.now) if token else None
        if token_record is not None:
            caller.user = self.db.get(USER, token_record["owner_uuid"])
        if caller.user is not None:
            caller.access = self.permissions.access_for(caller.user, caller.now)
        return caller

    def find_token(self, token: str, now: str) -> dict | None:
        parts = token.split("/")
        if len(parts) == 3 and parts[0] == "v2":
            record = self.db.get(API_CLIENT_AUTHORIZATION, parts[1])
            if record is None or not secrets.compare_digest(record["api_token"], parts[2]):
                return None
        else:
            found = self.db.select(API_CLIENT_AUTHORIZATION, _token_condition(token), limit=1)
            record = found[0] if found else None
        if record is None or (record["expires_at"] is not None and record["expires_at"] <= now):
            return None
        return record

    def mint_token(self, user_uuid: str, expires_at: str | None = None, scopes: list | None = None) -> dict:
        now = timestamps.now_timestamp()
        record = {
            "uuid": self.new_uuid("ApiClientAuthorization"),
            "owner_uuid": user_uuid,
            "created_at": now,
            "modified_at": now,
            "modified_by_user_uuid": self.settings.system_user_uuid,
            "api_token": new_secret(),
            "expires_at": timestamps.normalize_timestamp(expires_at) if expires_at else None,
            "scopes": scopes or ["all"],
        }
        self.db.insert(API_CLIENT_AUTHORIZATION, record)
        return record


def _token_condition(token: str) -> Condition:
    return Condition('"api_token" = ?', [token])


class Bootstrap:
    """Creates the system user and groups, the demo users with their tokens, and the Keep service record."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.now = timestamps.now_timestamp()

    def _base(self, uuid: str, owner_uuid: str) -> dict:
        return {"uuid": uuid, "owner_uuid": owner_uuid, "created_at": self.now, "modified_at": self.now,
                "modified_by_user_uuid": self.cluster.settings.system_user_uuid}

    def run(self) -> None:
        settings = self.cluster.settings
        db = self.cluster.db
        system_uuid = settings.system_user_uuid
        if db.get(USER, system_uuid) is None:
            db.insert(USER, {**self._base(system_uuid, system_uuid), "email": "root", "username": "root",
                             "first_name": "root", "last_name": "", "is_active": True, "is_admin": True, "prefs": {}})
        self._ensure_group(ids.system_group_uuid(settings.cluster_id), "System group")
        self._ensure_group(ids.all_users_group_uuid(settings.cluster_id), "All users")
        for username, first_name, last_name, is_admin in DEMO_USERS:
            self._ensure_user(username, first_name, last_name, is_admin)
        self._ensure_keep_service()

    def _ensure_group(self, uuid: str, name: str) -> None:
        if self.cluster.db.get(GROUP, uuid) is None:
            self.cluster.db.insert(GROUP, {**self._base(uuid, self.cluster.settings.system_user_uuid), "name": name,
                                           "group_class": "role", "description": None, "properties": {},
                                           "is_trashed": False})

    def _ensure_user(self, username: str, first_name: str, last_name: str, is_admin: bool) -> None:
        db = self.cluster.db
        existing = db.rows('SELECT "uuid" FROM users WHERE "username" = ?', [username])
        if existing:
            return
        uuid = self.cluster.new_uuid("User")
        db.insert(USER, {**self._base(uuid, self.cluster.settings.system_user_uuid), "email": f"{username}@example.com",
                         "username": username, "first_name": first_name, "last_name": last_name,
                         "identity_url": f"https://login.example/{username}", "is_active": True, "is_admin": is_admin,
                         "prefs": {}})
        all_users = ids.all_users_group_uuid(self.cluster.settings.cluster_id)
        for tail, head, name in ((uuid, all_users, "can_write"), (all_users, uuid, "can_read")):
            db.insert(LINK, {**self._base(self.cluster.new_uuid("Link"), self.cluster.settings.system_user_uuid),
                             "tail_uuid": tail, "head_uuid": head, "link_class": "permission", "name": name,
                             "properties": {}})
        self.cluster.mint_token(uuid)

    def _ensure_keep_service(self) -> None:
        settings = self.cluster.settings
        uuid = ids.fixed_uuid(settings.cluster_id, "KeepService", "000000000000000")
        fields = {"service_host": settings.keep_host, "service_port": settings.keep_port, "service_ssl_flag": False,
                  "service_type": "disk", "read_only": False}
        if self.cluster.db.get(KEEP_SERVICE, uuid) is None:
            self.cluster.db.insert(KEEP_SERVICE, {**self._base(uuid, settings.system_user_uuid), **fields})
        else:
            self.cluster.db.update(KEEP_SERVICE, uuid, fields)


def identities(cluster: Cluster) -> dict[str, dict[str, str]]:
    """username -> {uuid, token} for the demo users, using each one's oldest token that never expires."""
    found = {}
    for username, first_name, last_name, is_admin in DEMO_USERS:
        user = cluster.db.rows('SELECT "uuid" FROM users WHERE "username" = ?', [username])[0]
        token = cluster.db.rows(
            'SELECT "uuid", "api_token" FROM api_client_authorizations WHERE "owner_uuid" = ? AND "expires_at" IS NULL ORDER BY id LIMIT 1',
            [user["uuid"]])[0]
        found[username] = {"uuid": user["uuid"], "token": full_token(token)}
    return found
