#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
module: arvados_docker_image_info
short_description: List the Docker images stored in an Arvados cluster
version_added: 0.1.0
description:
  - Lists the Docker images the token can read, as C(arv-keepdocker images) prints them, as data. The listing is
    C(arvados.commands.keepdocker.list_images_in_arv), the one C(arv-keepdocker) relies on. Each image comes once per
    repository and tag it is linked under; an image without any C(docker_image_repo+tag) link comes once, with no
    repository and tag.
  - Marks, for each C(repo:tag), the image that the API server would run for a container request with that name
    (see P(arvados.cluster.arvados_docker_image#lookup) for the rules), from everything the token can read, whatever
    the filters.
author:
  - arvados.cluster contributors (@arvados)
requirements:
  - arvados-python-client >= 3.2.1
extends_documentation_fragment:
  - arvados.cluster.arvados
  - arvados.cluster.attributes
  - arvados.cluster.attributes.actiongroup_arvados
  - arvados.cluster.attributes.info_module
options:
  name:
    description:
      - Only images of this repository, given as C(repo) or C(repo:tag).
      - Names are normalised as Docker does, so C(docker.io/library/debian) is C(debian).
    type: str
  tag:
    description:
      - Only images with this tag. A tag in both O(name) and O(tag) must be the same.
    type: str
  image_id:
    description:
      - Only the image with this id, or the images whose id starts with this prefix, given as C(sha256:<hex>) with
        at least 4 hex digits, or as 12 to 64 bare hex digits.
    type: str
  project_uuid:
    description:
      - Only images whose links and collection this project owns, as C(arv-keepdocker --project-uuid) lists them.
    type: str
notes:
  - The listing orders the images of each name by the image timestamp and link creation time at full precision, and
    places a collection by its most preferred link; the API server compares whole seconds, places a collection by its
    oldest matching link, and skips formats the cluster does not support. RV(images[].preferred) follows the server.
seealso:
  - module: arvados.cluster.arvados_docker_image
  - plugin: arvados.cluster.arvados_docker_image
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: List every image the token can read
  arvados.cluster.arvados_docker_image_info:
  register: all_images

- name: The images of one project
  arvados.cluster.arvados_docker_image_info:
    project_uuid: "{{ images_project_uuid }}"
  register: project_images

- name: Every image tagged team/bwa:0.7.17, and which one containers run
  arvados.cluster.arvados_docker_image_info:
    name: team/bwa
    tag: 0.7.17
  register: bwa

- name: Show the portable data hash containers run for team/bwa:0.7.17
  ansible.builtin.debug:
    msg: "{{ (bwa.images | selectattr('preferred') | first).portable_data_hash }}"

- name: Where an image id is stored
  arvados.cluster.arvados_docker_image_info:
    image_id: "{{ bwa.images[0].image_id[:19] }}"
  register: bwa_copies
"""

RETURN = r"""
images:
  description:
    - The images, one entry per collection and C(repo:tag), in the listing's order (each name's images from most to
      least preferred).
  returned: always
  type: list
  elements: dict
  contains:
    repo:
      description: The repository, or null for an image listed only by its C(docker_image_hash) link.
      type: str
      sample: team/bwa
    tag:
      description: The tag, or null.
      type: str
      sample: 0.7.17
    image_id:
      description:
        - The image id from the collection's C(docker_image_hash) link, as C(sha256:<hex>) (v1 images' links name the
          bare hex), or null when it has none.
      type: str
      sample: sha256:be05d0e5e2b6d3c4b1a7d1e9f7c0a1b2c3d4e5f60718293a4b5c6d7e8f901234
    collection_uuid:
      description: The collection holding the image.
      type: str
      sample: zzzzz-4zz18-0123456789abcde
    portable_data_hash:
      description: Its portable data hash, the value to put in a container request.
      type: str
      sample: 7f3b1e0e5d3b2e5c9c3b9e1f3a6d1c2e+1224
    owner_uuid:
      description: The project or user that owns the collection.
      type: str
      sample: zzzzz-j7d0g-0123456789abcde
    image_timestamp:
      description: The image's build time recorded on the link, or null when the link has none.
      type: str
      sample: "2026-11-26T19:56:41.294780Z"
    created_at:
      description: When the link this entry comes from was created.
      type: str
      sample: "2026-11-26T20:01:12.000104Z"
    preferred:
      description:
        - Whether the API server would run this collection for a container request with C(repo:tag), from everything
          the token can read (the entry whose link the server follows, when a migration link leads it on to another
          collection). False for entries without a repository.
      type: bool
"""

import datetime
import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arvados.cluster.plugins.module_utils._arvados import (
    ARVADOS_CONNECTION_SPEC,
    ArvadosClient,
    ArvadosClientError,
    connection_from_module,
)
from ansible_collections.arvados.cluster.plugins.module_utils._catalog import (
    CatalogReader,
    ImageCollection,
    ServerChoice,
    full_image_id,
    iso_time,
    system_user_uuid_of,
)
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import (
    ImageRefError,
    image_id_prefix_of,
    normalise_repo,
    split_repo_tag,
)

# What list_images_in_arv writes for a missing repository, tag or image id.
UNKNOWN_VALUES = ("<none>", "<unknown>")


def argument_spec() -> dict[str, t.Any]:
    spec: dict[str, t.Any] = {
        "name": {"type": "str"},
        "tag": {"type": "str"},
        "image_id": {"type": "str"},
        "project_uuid": {"type": "str"},
    }
    spec.update(ARVADOS_CONNECTION_SPEC)
    return spec


class ImageFilter:
    """The module's filters, checked and normalised before anything is read."""

    def __init__(self, name: str | None, tag: str | None, image_id: str | None) -> None:
        self.repo, self.tag = _repo_and_tag(name, tag)
        self.image_id_prefix = _image_id_prefix(image_id)

    def matches(self, image: t.Mapping[str, t.Any]) -> bool:
        if self.repo is not None and image["repo"] != self.repo:
            return False
        if self.tag is not None and image["tag"] != self.tag:
            return False
        return self.image_id_prefix is None or (image["image_id"] or "").startswith(self.image_id_prefix)

    def listing_searches(self) -> list[tuple[str | None, str | None]]:
        """The image_name and image_tag arguments that narrow list_images_in_arv's own reads.

        An image id is searched in both forms: hash links of v1 images name it without `sha256:`.
        """
        if self.repo is not None and self.tag is not None:
            return [(self.repo, self.tag)]
        if self.image_id_prefix is not None:
            return [(self.image_id_prefix, None), (self.image_id_prefix[len("sha256:"):], None)]
        return [(None, None)]


def _repo_and_tag(name: str | None, tag: str | None) -> tuple[str | None, str | None]:
    if name is None:
        return None, tag
    repo, name_tag = split_repo_tag(name)
    if name_tag is not None and tag is not None and name_tag != tag:
        raise ImageRefError(f"name {name!r} includes tag {name_tag!r} but option tag is {tag!r}; give the tag in only one of them")
    return normalise_repo(repo), name_tag if name_tag is not None else tag


def _image_id_prefix(image_id: str | None) -> str | None:
    if image_id is None:
        return None
    try:
        prefix = image_id_prefix_of(image_id)
    except ImageRefError:
        prefix = None
    if prefix is None:
        raise ImageRefError(f"image_id: {image_id!r} is not an image id; give sha256: and 4 to 64 lowercase hex digits, or 12 to 64 bare ones")
    return prefix


class ImageLister:
    """Lists images through the upstream listing, then adds owners, portable data hashes and the server's choice."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.image_filter = ImageFilter(module.params["name"], module.params["tag"], module.params["image_id"])
        self.client: t.Any = None
        self.reader: t.Any = None

    def run(self) -> dict[str, t.Any]:
        self.client = ArvadosClient(connection_from_module(self.module))
        self.reader = CatalogReader(self.client)
        images = [image for image in self.listing() if self.image_filter.matches(image)]
        collections = {collection.uuid: collection for collection in self.reader.collections(image["collection_uuid"] for image in images)}
        images = [with_collection(image, collections[image["collection_uuid"]]) for image in images if image["collection_uuid"] in collections]
        mark_preferred(images, self.server_choices(images))
        return {"changed": False, "images": images}

    def listing(self) -> list[dict[str, t.Any]]:
        """The upstream listing's entries, each (collection, repo, tag) once, in the listing's order."""
        entries: dict[tuple[t.Any, ...], dict[str, t.Any]] = {}
        for image_name, image_tag in self.image_filter.listing_searches():
            for uuid, info in self.reader.upstream_listing(image_name, image_tag, self.module.params["project_uuid"]):
                entry = listing_entry(uuid, info)
                entries.setdefault((uuid, entry["repo"], entry["tag"]), entry)
        return list(entries.values())

    def server_choices(self, images: list[dict[str, t.Any]]) -> dict[str, ServerChoice]:
        names = sorted({repo_tag_of(image) for image in images if image["repo"] is not None})
        return self.reader.server_choices(names, self.client.docker_image_formats(), system_user_uuid_of(self.client.discovery))


def listing_entry(collection_uuid: str, info: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """One list_images_in_arv entry as data; its `_sort_key` holds both of the link's times."""
    image_timestamp, created_at = _link_times(info)
    image_id = _known(info.get("dockerhash"))
    return {
        "repo": _known(info.get("repo")),
        "tag": _known(info.get("tag")),
        "image_id": full_image_id(image_id) if image_id else None,
        "collection_uuid": collection_uuid,
        "portable_data_hash": None,
        "owner_uuid": None,
        "image_timestamp": iso_time(image_timestamp),
        "created_at": iso_time(created_at),
        "preferred": False,
    }


def _known(value: t.Any) -> t.Any:
    return None if value in UNKNOWN_VALUES else value


def _link_times(info: t.Mapping[str, t.Any]) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    image_timestamp, created_at = info.get("_sort_key") or (None, info.get("timestamp"))
    # list_images_in_arv stands datetime.datetime.min in for a missing image timestamp (keepdocker.EARLIEST_DATETIME).
    if image_timestamp is not None and image_timestamp.year == datetime.MINYEAR:
        image_timestamp = None
    return image_timestamp, created_at


def with_collection(image: dict[str, t.Any], collection: ImageCollection) -> dict[str, t.Any]:
    return dict(image, portable_data_hash=collection.portable_data_hash, owner_uuid=collection.owner_uuid)


def repo_tag_of(image: t.Mapping[str, t.Any]) -> str:
    return f"{image['repo']}:{image['tag']}"


def mark_preferred(images: list[dict[str, t.Any]], choices: t.Mapping[str, ServerChoice]) -> None:
    """Set `preferred` on the entry of each repo:tag whose collection the server picks."""
    for image in images:
        choice = choices.get(repo_tag_of(image)) if image["repo"] is not None else None
        winner = choice.winner if choice is not None else None
        if winner is not None:
            followed = winner.migrated_from or winner.collection
            image["preferred"] = image["collection_uuid"] in (winner.collection.uuid, followed.uuid)


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = ImageLister(module).run()
    except (ImageRefError, ArvadosClientError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_json(msg=f"unexpected error: {type(exc).__name__}: {exc}", exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
