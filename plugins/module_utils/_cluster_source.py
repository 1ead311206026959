# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""`source: arvados`: an image another Arvados cluster holds, resolved there as the lookup resolves it, copied Keep to Keep.

No Docker daemon is involved. `name` is resolved on the source cluster with `read_view` and `server_choice` (the
server's choice for `repo:tag`; the collections holding the id for an image id). Identifying it reads only the source's
API; its Keep is read only when the destination must receive blocks (`copy_blocks`), and the destination's collection
gets the same manifest re-signed by the destination, hence the same portable data hash.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import functools
import os
import re
import typing as t

from ansible_collections.arvados.cluster.plugins.module_utils._arvados import ArvadosClient, ConnectionOptions, connection_options
from ansible_collections.arvados.cluster.plugins.module_utils._block_copy import (
    BlockCopy,
    copy_blocks,
    manifest_blocks,
    resigned_manifest,
)
from ansible_collections.arvados.cluster.plugins.module_utils._catalog_reader import CatalogReader
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ImageNotFound, ImageSourceError, OptionError
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import ImageRef
from ansible_collections.arvados.cluster.plugins.module_utils._image_source import ImageIdentity
from ansible_collections.arvados.cluster.plugins.module_utils._resume_cache import ResumeCache
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import Candidate, parse_term, server_term
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import server_choice
from ansible_collections.arvados.cluster.plugins.module_utils._keep_stream import KeepStream
from ansible_collections.arvados.cluster.plugins.module_utils._upload import cluster_default_copies, keep_block_writer

SOURCE_CONNECTION_SPEC: dict[str, dict[str, t.Any]] = {
    "source_api_host": {"type": "str"},
    "source_api_token": {"type": "str", "no_log": True},
    "source_api_insecure": {"type": "bool"},
    "source_cluster": {"type": "str"},
}
_WHERE_TO_SET = ("set source_{option} (or the variable arvados_source_{option}), or source_cluster: <cluster id> to read "
                 "arv-copy's ~/.config/arvados/<cluster id>.conf")
# The connection options the source sets for itself; retries and timeouts are the task's.
_SOURCE_OPTIONS = frozenset(("api_host", "api_token", "api_insecure"))
_CLUSTER_ID = re.compile(r"^[a-z0-9]{5}$")
# The file name of a v2 image in its collection; a v1 image's (`<hex>.tar`) is not copied.
_V2_FILE = re.compile(r"^sha256:[0-9a-f]{64}\.tar$")
# The source's blocks are read once each: a Keep block cache of a byte keeps none of them.
_NO_BLOCK_CACHE = 1
# How long a streamed block may wait on either Keep service for its next bytes.
KEEP_TIMEOUT_SECONDS = 300


def refused_source_options(params: t.Mapping[str, t.Any]) -> list[str]:
    """The source connection options a task sets although its source is not `arvados`."""
    return [option for option in SOURCE_CONNECTION_SPEC if params.get(option) is not None] if params["source"] != "arvados" else []


def cluster_config(cluster_id: str, environ: t.Mapping[str, str] | None = None) -> dict[str, str]:
    """arv-copy's settings of one cluster, `$XDG_CONFIG_HOME/arvados/<cluster id>.conf` (else ~/.config/...): KEY=VALUE lines."""
    environ = os.environ if environ is None else environ
    if not _CLUSTER_ID.match(cluster_id):
        raise OptionError(f"source_cluster: {cluster_id!r} is not a cluster id (five lower-case letters or digits, as arv-copy's --src)")
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = os.path.join(base, "arvados", f"{cluster_id}.conf")
    try:
        with open(path, encoding="utf-8") as config_file:
            lines = config_file.read().splitlines()
    except OSError as exc:
        raise OptionError(f"source_cluster: cannot read {path} ({exc.strerror}); write ARVADOS_API_HOST and ARVADOS_API_TOKEN "
                          "there as arv-copy reads them, or set source_api_host and source_api_token") from None
    settings = {}
    for line in lines:
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            settings[name.strip()] = value.strip()
    return settings


def source_connection(params: t.Mapping[str, t.Any]) -> ConnectionOptions:
    """The source cluster's connection: the source_* options (or arvados_source_* variables), else source_cluster's file."""
    settings = cluster_config(params["source_cluster"]) if params.get("source_cluster") else {}

    def get(option: str) -> t.Any:
        return params.get(f"source_{option}") if option in _SOURCE_OPTIONS else params.get(option)

    return connection_options(get, settings_value=settings.get, where_to_set=_WHERE_TO_SET, option_prefix="source_")


class ClusterSource:
    """The image `name` names on the source cluster; `copy_blocks` writes its blocks into the destination's Keep."""

    def __init__(self, params: t.Mapping[str, t.Any], ref: ImageRef) -> None:
        self.options = source_connection(params)
        self.ref = ref
        self.client: ArvadosClient | None = None
        self.candidate: Candidate | None = None

    @property
    def name(self) -> str:
        return self.ref.repo_tag or self.ref.image_id_prefix or ""

    def identify(self) -> ImageIdentity:
        """Resolve `name` on the source (its API only) and return the image's id and the source's `image_timestamp`."""
        self.client = ArvadosClient(self.options, keep_params={"block_cache": _no_block_cache(), "num_retries": self.options.num_retries})
        term = server_term(self.ref.repo_tag) if self.ref.repo_tag else parse_term(self.name)
        choice = server_choice(CatalogReader(self.client).read_view([term]), term)
        winner = choice.winner
        if winner is None:
            raise ImageNotFound(f"name: the source cluster {self.options.api_host} has no image {self.name} that source_api_token "
                                f"can read ({choice.error or 'nothing matched'}); check the name, and that the token can read the "
                                "image's collection and links there")
        if not any(_V2_FILE.match(name) for name in winner.collection.file_names):
            raise ImageSourceError(f"name: {self.name} on the source cluster {self.options.api_host} is a Docker image format v1 "
                                   f"collection ({winner.collection.uuid}); only format v2 images are copied between clusters")
        self.candidate = winner
        created = winner.link.properties.get("image_timestamp", "") if winner.link is not None else ""
        return ImageIdentity(image_id=winner.image_id, created=created or "", repo_tags=[self.ref.repo_tag] if self.ref.repo_tag else [])

    def copy_blocks(self, destination: ArvadosClient, copies: int | None, storage_classes: list[str] | None,
                    resume: ResumeCache | None) -> str:
        """Copy the image's blocks into the destination's Keep and return its manifest, signed by the destination."""
        if self.client is None or self.candidate is None:
            raise ImageSourceError("the source image was not identified before its blocks were copied")
        manifest_text = self.candidate.collection.manifest_text or ""
        num_retries = destination.options.num_retries
        copies = copies if copies is not None else cluster_default_copies(destination.keep)
        put_block = keep_block_writer(destination.keep, copies=copies, storage_classes=storage_classes, num_retries=num_retries)
        source_keep = self.client.keep
        stream = KeepStream(source_keep, destination.keep, (self.options.api_insecure, destination.options.api_insecure), copies,
                            storage_classes, timeout=KEEP_TIMEOUT_SECONDS)
        get_block = functools.partial(source_keep.get, num_retries=self.options.num_retries)
        copy_one = BlockCopy(get_block, put_block, destination.keep, resume, stream=stream, num_retries=num_retries)
        signed = copy_blocks(manifest_blocks(manifest_text), copy_one)
        return resigned_manifest(manifest_text, signed)


def _no_block_cache() -> t.Any:
    """A Keep block cache of a byte: each block the source's Keep client reads is read once and must not stay in memory."""
    import arvados.keep  # pylint: disable=import-outside-toplevel
    return arvados.keep.KeepBlockCache(cache_max=_NO_BLOCK_CACHE)
