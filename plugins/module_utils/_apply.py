# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This file is private to the arvados.cluster collection (the leading underscore says so): its
# functions may change without notice and must not be used from outside the collection.
"""Carry out planned actions against the cluster: upload or copy a collection, then links, updates, removals.

Order is what keeps a failure harmless: a collection is saved before any link points at it, and it
carries the image id as a property, so a run stopped in between finds it again and only adds links. A run that
fails after changing something says what it changed (_errors.note_changes_made), and reports `changed`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import note_changes_made
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import keep_file_name
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import default_collection_name
from ansible_collections.arvados.cluster.plugins.module_utils._plan import (
    COPY,
    CREATE_LINK,
    DELETE_LINK,
    HASH_LINK,
    TRASH_COLLECTION,
    UPDATE_COLLECTION,
    UPLOAD,
    Action,
    DesiredImage,
    new_collection_properties,
)
from ansible_collections.arvados.cluster.plugins.module_utils._records import COLLECTION_FIELDS, ImageCollection
from ansible_collections.arvados.cluster.plugins.module_utils._resume_cache import ResumeCache
from ansible_collections.arvados.cluster.plugins.module_utils._upload import write_stream_to_keep

LOCK_DIR = os.path.join("~", ".cache", "arvados-cluster", "locks")
# (destination client, copies, storage classes, resume cache) -> the destination's signed manifest.
CopyBlocks = t.Callable[[t.Any, t.Optional[int], t.Optional[t.List[str]], ResumeCache], str]


@contextlib.contextmanager
def image_lock(image_id: str, lock_dir: str = LOCK_DIR) -> t.Iterator[None]:
    """Hold a host-wide lock for one image id, so parallel runs for the same image upload it once.

    The lock file is removed when the run ends, and so are those that killed runs left (nobody holds their lock).
    A removed file's lock guards nothing, so a run that locked a file someone removed meanwhile opens it again.
    """
    directory = os.path.expanduser(lock_dir)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    name = hashlib.sha256(image_id.encode("utf-8")).hexdigest()[:32]
    path = os.path.join(directory, f"{name}.lock")
    lock_file = _locked_file(path, blocking=True)
    try:
        yield
    finally:
        _remove_and_unlock(path, lock_file)
        remove_stale_locks(directory)


def _locked_file(path: str, blocking: bool) -> t.IO[str] | None:
    """`path` opened and locked, and still the file at `path`; None when not blocking and another run holds it."""
    while True:
        lock_file = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            return None
        if _is_file_at(lock_file, path):
            return lock_file
        lock_file.close()
        if not blocking:
            return None


def _is_file_at(lock_file: t.IO[str], path: str) -> bool:
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(lock_file.fileno())
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)


def _remove_and_unlock(path: str, lock_file: t.IO[str]) -> None:
    """Remove the file while still holding its lock: a run waiting on it then finds it gone and opens a new one."""
    with lock_file:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fcntl.flock(lock_file, fcntl.LOCK_UN)


def remove_stale_locks(directory: str) -> None:
    """Remove the lock files no run holds (runs killed before they could remove theirs)."""
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.name.endswith(".lock")]
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            lock_file = _locked_file(path, blocking=False)
            if lock_file is not None:
                _remove_and_unlock(path, lock_file)


class ActionRunner:
    """Applies a plan for one image through an ArvadosClient; `collection_uuid` is the image's collection after it."""

    def __init__(self, client: t.Any, desired: DesiredImage, open_image_stream: t.Callable[[], t.Any] | None = None,
                 collection_uuid: str | None = None, copy_blocks: CopyBlocks | None = None) -> None:
        self.client = client
        self.desired = desired
        self.open_image_stream = open_image_stream
        # Another cluster's image is copied block for block (same manifest), not streamed.
        self.copy_blocks = copy_blocks
        self.collection_uuid = collection_uuid
        self.changed_uuids: list[str] = []
        # The collections this run created, as the create answered them.
        self.created: list[ImageCollection] = []
        # What this run changed, in words, for the report of a run that fails half-way.
        self.changes_made: list[str] = []

    def run(self, actions: t.Sequence[Action]) -> None:
        handlers = {
            UPLOAD: self._upload, COPY: self._copy, CREATE_LINK: self._create_link, UPDATE_COLLECTION: self._update,
            DELETE_LINK: self._delete_link, TRASH_COLLECTION: self._trash,
        }
        try:
            for action in actions:
                handlers[action.kind](action)
        except Exception as exc:
            note_changes_made(exc, self.changes_made)
            raise

    def _api(self) -> t.Any:
        return self.client.api

    def _upload(self, _action: Action) -> None:
        if self.copy_blocks is not None:
            self._copy_blocks()
            return
        if self.open_image_stream is None:
            raise ValueError("an upload needs the image's bytes, but no image source was opened")
        stream = self.open_image_stream()
        options = self.client.options
        resume = ResumeCache.for_upload(options.api_host, options.api_token, self.desired.image_id)
        try:
            manifest_text = write_stream_to_keep(
                self.client.keep, stream, keep_file_name(self.desired.image_id), copies=self.desired.replication,
                storage_classes=list(self.desired.storage_classes or []) or None, num_retries=self.client.options.num_retries,
                resume=resume,
            )
        finally:
            stream.close()
        self._save_new_collection(manifest_text)
        resume.forget()

    def _copy_blocks(self) -> None:
        options = self.client.options
        resume = ResumeCache.for_upload(options.api_host, options.api_token, self.desired.image_id)
        storage_classes = list(self.desired.storage_classes or []) or None
        self._save_new_collection(self.copy_blocks(self.client, self.desired.replication, storage_classes, resume))
        resume.forget()

    def _copy(self, action: Action) -> None:
        source = self.client.execute(self._api().collections().get(uuid=action.source))
        self._save_new_collection(source["manifest_text"])

    def _save_new_collection(self, manifest_text: str) -> None:
        desired = self.desired
        body: dict[str, t.Any] = {
            "owner_uuid": desired.project_uuid,
            "name": desired.collection_name or default_collection_name(desired.repo_tag, desired.image_id),
            "manifest_text": manifest_text,
            "properties": new_collection_properties(desired),
        }
        if desired.replication is not None:
            body["replication_desired"] = desired.replication
        if desired.storage_classes is not None:
            body["storage_classes_desired"] = list(desired.storage_classes)
        request = self._api().collections().create(body={"collection": body}, ensure_unique_name=True, select=list(COLLECTION_FIELDS))
        created = ImageCollection.from_api(self.client.execute(request))
        self.created.append(created)
        self.collection_uuid = created.uuid
        self.changed_uuids.append(self.collection_uuid)
        self.changes_made.append(f"created collection {self.collection_uuid} in project {desired.project_uuid}")

    def _create_link(self, action: Action) -> None:
        head_uuid = action.target or self.collection_uuid
        properties = {"image_timestamp": self.desired.image_timestamp} if self.desired.image_timestamp else {}
        body = {
            "owner_uuid": self.desired.project_uuid, "head_uuid": head_uuid, "link_class": action.link_class,
            "name": action.link_name, "properties": properties,
        }
        link_uuid = self.client.execute(self._api().links().create(body={"link": body}))["uuid"]
        self.changes_made.append(f"created {action.link_class} link {link_uuid} to {head_uuid}")
        if action.link_class == HASH_LINK:
            self.collection_uuid = head_uuid

    def _update(self, action: Action) -> None:
        self.client.execute(self._api().collections().update(uuid=action.target, body={"collection": dict(action.changes)}, select=["uuid"]))
        self.changed_uuids.append(action.target)
        self.changes_made.append(f"updated {', '.join(sorted(action.changes))} of collection {action.target}")

    def _delete_link(self, action: Action) -> None:
        self.client.execute(self._api().links().delete(uuid=action.target))
        self.changes_made.append(f"deleted link {action.target}")

    def _trash(self, action: Action) -> None:
        self.client.execute(self._api().collections().trash(uuid=action.target))
        self.changed_uuids.append(action.target)
        self.changes_made.append(f"trashed collection {action.target}")
