# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

# This file is private to the arvados.cluster collection (the leading underscore says so): its
# functions may change without notice and must not be used from outside the collection.
"""One transfer of an image into a project, whichever hosts run for it: a claim made through the cluster itself.

Before it uploads, a run creates a placeholder collection in the project named for the image, without
`ensure_unique_name`: the server's unique index on (owner_uuid, name) over collections not trashed lets one create
succeed, and a second fails (422, RecordNotUnique), which means that another run holds the claim. The claim's
`trash_at` is its expiry, renewed while the transfer runs; the claim is trashed once the collection and its links are
made, or when the run fails. A run that finds the image claimed waits for the claim to go, then reads the project
again: the claimant's collection is there, or it is not (the claimant failed) and the run claims it in turn.

A claim left by a killed run is no longer renewed. Once it has gone unrenewed for its own ttl, as this run's clock
measures (so that clocks need not agree), the waiting run trashes it and claims the image. A claim made under the same
host lock as the waiting run's (same machine, same lock folder) is taken over at once: the waiting run holds that lock
for the image, so the claimant is no longer running. The server itself hides a
claim whose `trash_at` has passed, but its name stays taken until it is trashed, as the API server's unique index
counts collections by `is_trashed`, which only its trash sweep or a trash call sets.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import socket
import threading
import time
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError

CLAIM_NAME_PREFIX = "arvados.cluster upload claim "
CLAIM_TTL_PROPERTY = "arvados-cluster-claim-ttl"
CLAIM_LOCK_PROPERTY = "arvados-cluster-claim-lock"
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
FIRST_POLL_SECONDS = 0.25
DEFAULT_CLAIM_TTL = 300
# The server's unique (owner_uuid, name) rule answers a second create with 422 and this in its message.
UNIQUE_VIOLATION_MARKERS = ("RecordNotUnique", "duplicate key value violates unique constraint")

T = t.TypeVar("T")


def claim_name(image_id: str) -> str:
    return f"{CLAIM_NAME_PREFIX}{image_id}"


def expiry_after(seconds: float, now: datetime.datetime | None = None) -> str:
    """An Arvados timestamp `seconds` from now."""
    moment = (now or datetime.datetime.now(datetime.timezone.utc)) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def host_lock_identity(lock_dir: str) -> str:
    """Which runs share a host lock folder: this machine (host name and boot) and the folder, hashed so that the claim
    tells the cluster neither."""
    try:
        with open(BOOT_ID_FILE, encoding="ascii") as boot_id_file:
            boot_id = boot_id_file.read().strip()
    except OSError:
        boot_id = ""
    where = f"{socket.gethostname()}\0{boot_id}\0{os.path.realpath(os.path.expanduser(lock_dir))}"
    return hashlib.sha256(where.encode("utf-8")).hexdigest()[:32]


def poll_interval(ttl: float) -> float:
    """How often a waiting run looks at the claim: often enough to notice a short ttl, at most every 2 s."""
    return min(2.0, max(0.1, ttl / 10))


def is_unique_violation(error: ArvadosClientError) -> bool:
    return error.status == 422 and any(marker in str(error) for marker in UNIQUE_VIOLATION_MARKERS)


class StaleClaims:
    """Claims seen while waiting, and since when (this run's clock) each has shown the same `modified_at`."""

    def __init__(self, clock: t.Callable[[], float], lock_identity: str | None = None) -> None:
        self._clock = clock
        self._lock_identity = lock_identity
        self._seen: dict[str, tuple[str, float]] = {}

    def is_stale(self, claim: t.Mapping[str, t.Any], default_ttl: float) -> bool:
        """Whether the claim's run is gone: it shares this run's host lock, or went unrenewed for its ttl since this run
        first saw it as it is."""
        if self._lock_identity and (claim.get("properties") or {}).get(CLAIM_LOCK_PROPERTY) == self._lock_identity:
            return True
        version = str(claim.get("modified_at"))
        seen_version, since = self._seen.get(claim["uuid"], (None, 0.0))
        if seen_version != version:
            self._seen[claim["uuid"]] = (version, self._clock())
            return False
        ttl = _as_seconds((claim.get("properties") or {}).get(CLAIM_TTL_PROPERTY), default_ttl)
        return self._clock() - since >= ttl


def _as_seconds(value: t.Any, default: float) -> float:
    try:
        return float(value) if float(value) > 0 else default
    except (TypeError, ValueError):
        return default


class UploadClaim:
    """The claim of one image in one project, for one run; `waited` is how long the run waited for others' claims."""

    def __init__(self, client: t.Any, project_uuid: str, image_id: str, ttl: float, lock_identity: str | None = None,
                 clock: t.Callable[[], float] = time.monotonic, sleep: t.Callable[[float], None] = time.sleep) -> None:
        """`lock_identity`: the host lock the run holds for the image while it claims (see host_lock_identity)."""
        self.client = client
        self.lock_identity = lock_identity
        self.project_uuid = project_uuid
        self.name = claim_name(image_id)
        self.ttl = ttl
        self.uuid: str | None = None
        self.waited = 0.0
        self._clock = clock
        self._sleep = sleep

    def take(self) -> bool:
        """Create the claim; False when another run holds it."""
        body = {"owner_uuid": self.project_uuid, "name": self.name, "manifest_text": "", "trash_at": expiry_after(self.ttl),
                "properties": {CLAIM_TTL_PROPERTY: self.ttl, CLAIM_LOCK_PROPERTY: self.lock_identity}}
        try:
            created = self.client.execute(self.client.api.collections().create(body={"collection": body}, select=["uuid"]))
        except ArvadosClientError as exc:
            if is_unique_violation(exc):
                return False
            raise
        self.uuid = created["uuid"]
        return True

    def wait_for_release(self) -> None:
        """Wait until no claim holds the name; one unrenewed for its ttl, or past its expiry, is trashed."""
        started, stale = self._clock(), StaleClaims(self._clock, self.lock_identity)
        interval = FIRST_POLL_SECONDS  # short transfers are handed over quickly, long ones cost few requests
        try:
            while True:
                held = self.claims(include_expired=False)
                if not held:  # gone, or expired: the server hides it, but its name stays taken until it is trashed
                    for expired in self.claims(include_expired=True):
                        self._trash(expired["uuid"])
                    return
                for claim in held:
                    if stale.is_stale(claim, self.ttl):
                        self._trash(claim["uuid"])
                        return
                self._sleep(interval)
                interval = min(2 * interval, poll_interval(self.ttl))
        finally:
            self.waited += self._clock() - started

    def claims(self, include_expired: bool) -> list[dict[str, t.Any]]:
        """The claims of this name not trashed; with `include_expired`, those past their `trash_at` too."""
        filters = [["owner_uuid", "=", self.project_uuid], ["name", "=", self.name], ["is_trashed", "=", False]]
        request = self.client.api.collections().list(filters=filters, select=["uuid", "modified_at", "properties"],
                                                     include_trash=include_expired, count="none")
        return list(self.client.execute(request)["items"])

    def renew(self) -> None:
        if self.uuid is not None:
            body = {"collection": {"trash_at": expiry_after(self.ttl)}}
            self.client.execute(self.client.api.collections().update(uuid=self.uuid, body=body, select=["uuid"]))

    @contextlib.contextmanager
    def renewed(self) -> t.Iterator[None]:
        """Renew the claim every third of its ttl while the block runs."""
        stop = threading.Event()

        def keep_renewing() -> None:
            while not stop.wait(self.ttl / 3):
                with contextlib.suppress(ArvadosClientError):  # a missed renewal only brings the expiry nearer
                    self.renew()

        renewer = threading.Thread(target=keep_renewing, daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()

    def release(self) -> None:
        """Trash the claim; one that cannot be trashed now expires at its `trash_at`."""
        if self.uuid is not None:
            with contextlib.suppress(ArvadosClientError):
                self._trash(self.uuid)
            self.uuid = None

    def _trash(self, uuid: str) -> None:
        self.client.execute(self.client.api.collections().trash(uuid=uuid))


@contextlib.contextmanager
def claimed_plan(claim: UploadClaim | None, plan: t.Callable[[], T], transfers: t.Callable[[T], bool],
                 confirmed: t.Callable[[T], T]) -> t.Iterator[T]:
    """The plan to carry out, holding the image's claim while the block runs when the plan transfers the image.

    `plan()` may leave its last read to `confirmed(planned)`, which makes it and returns the plan it gives (the same,
    or one read again). For a transfer it runs once the claim is taken, so that the same read also tells whether a run
    that held the claim just before stored the image meanwhile. When another run holds the claim, it runs at once (the
    image may be stored already, by a run that stopped before releasing its claim); if the plan still transfers, it is
    read again once the claim is gone.
    """
    planned = plan()
    while claim is not None and transfers(planned):
        if not claim.take():
            planned = confirmed(planned)
            if not transfers(planned):
                break
            claim.wait_for_release()
            planned = plan()
            continue
        try:
            with claim.renewed():
                yield confirmed(planned)
        finally:
            claim.release()
        return
    yield confirmed(planned)
