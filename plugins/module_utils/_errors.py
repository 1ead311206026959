# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The collection's one error hierarchy, and the one way an error becomes a task failure.

Every error a user can act on derives from CollectionError: its message names the field to fix and how, and holds
no secret. Anything else is a bug, reported with its traceback.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import traceback
import typing as t
from dataclasses import dataclass


class CollectionError(Exception):
    """A failure the user can act on; the message is the whole report."""

    # The option the message is about, named in front of messages that do not name it already.
    field: str | None = None

    def user_message(self) -> str:
        message = str(self)
        if self.field and not message.startswith(self.field):
            return f"{self.field}: {message}"
        return message


class OptionError(CollectionError, ValueError):
    """Options that do not fit together, or an option a plugin does not know."""


class ImageRefError(CollectionError, ValueError):
    """What the user wrote does not name a Docker image."""


class ArvadosClientError(CollectionError):
    """A failure talking to Arvados; `status` is the HTTP status when the server answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KeepUploadError(CollectionError):
    """Keep did not take a block; `bytes_written` says how much it had taken before."""

    def __init__(self, message: str, bytes_written: int = 0) -> None:
        super().__init__(message)
        self.bytes_written = bytes_written


class ImageSourceError(CollectionError):
    """The image could not be read from where the task says it is."""


class DaemonUnavailable(ImageSourceError):
    """The Docker daemon cannot be reached, or the docker SDK is missing."""


class ImageNotFound(ImageSourceError):
    """The daemon does not have the image."""


class ArchiveError(ImageSourceError):
    """The archive is not a readable image archive."""

    field = "archive_path"


class PullError(ImageSourceError):
    """The daemon could not pull the image."""


class SavedImageError(ImageSourceError):
    """What the Docker daemon saved does not load as the image it inspected (`docker load` would refuse it)."""


class StoredImageError(CollectionError):
    """A collection's file does not load as the image its links name (`docker load` would refuse it)."""


# The attribute of an exception that lists what the run had changed in the cluster before it stopped.
CHANGES_MADE = "arvados_cluster_changes_made"


def note_changes_made(exc: BaseException, changes: t.Sequence[str]) -> None:
    """Tell failure_of what the run changed before `exc` stopped it, so the failure reports `changed` and names it."""
    if changes:
        setattr(exc, CHANGES_MADE, list(changes))


@dataclass(frozen=True)
class Failure:
    """What a failed task reports: `msg` always, `traceback` only for a failure that is a bug."""

    msg: str
    traceback: str | None = None
    changed: bool = False

    def as_result(self) -> dict[str, t.Any]:
        result: dict[str, t.Any] = {"failed": True, "msg": self.msg}
        if self.changed:
            result["changed"] = True
        if self.traceback:
            result["exception"] = self.traceback
        return result


def failure_of(exc: BaseException) -> Failure:
    """The report of an exception: the message of an expected failure, or the traceback of a bug.

    Call it from an `except` block, so the traceback is the exception's. A run that changed the cluster before it
    stopped (see note_changes_made) reports `changed` and what it left, so the next run or a person can take it up.
    """
    changes = getattr(exc, CHANGES_MADE, None) or []
    left = f"; before it stopped, this run {', '.join(changes)}" if changes else ""
    if isinstance(exc, CollectionError):
        return Failure(exc.user_message() + left, changed=bool(changes))
    return Failure(f"unexpected error: {type(exc).__name__}: {exc}{left}", traceback.format_exc(), changed=bool(changes))
