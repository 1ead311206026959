"""What the cluster holds, read with the admin token, and the invariants every test checks against it."""
from __future__ import annotations

import dataclasses
import hashlib
import typing as t

IMAGE_LINK_CLASSES = ("docker_image_hash", "docker_image_repo+tag")
KEEP_BLOCK_SIZE = 64 * 1024 * 1024
PAGE = 1000


@dataclasses.dataclass(frozen=True)
class ExpectedImage:
    """An image as the module must store it: `docker save <id>` cut into Keep blocks, and its collection's PDH."""

    repo_tag: str
    image_id: str
    size: int
    portable_data_hash: str

    @property
    def file_name(self) -> str:
        return f"{self.image_id}.tar"

    @property
    def blocks(self) -> int:
        return max(1, -(-self.size // KEEP_BLOCK_SIZE))


def expected_image(docker_api: t.Any, repo_tag: str) -> ExpectedImage:
    """Stream `docker save` of the image's id (as the module saves it) and compute the PDH its collection must have."""
    image_id = docker_api.inspect_image(repo_tag)["Id"]
    locators: list[str] = []
    block, block_size, size = hashlib.md5(), 0, 0
    for chunk in docker_api.get_image(image_id, chunk_size=1 << 20):
        view = memoryview(chunk)
        while view:
            take = view[:KEEP_BLOCK_SIZE - block_size]
            block.update(take)
            block_size += len(take)
            size += len(take)
            view = view[len(take):]
            if block_size == KEEP_BLOCK_SIZE:
                locators.append(f"{block.hexdigest()}+{block_size}")
                block, block_size = hashlib.md5(), 0
    if block_size or not locators:
        locators.append(f"{block.hexdigest()}+{block_size}")
    manifest = f". {' '.join(locators)} 0:{size}:{image_id.replace(':', chr(92) + '072')}.tar\n"
    pdh = f"{hashlib.md5(manifest.encode()).hexdigest()}+{len(manifest)}"
    return ExpectedImage(repo_tag=repo_tag, image_id=image_id, size=size, portable_data_hash=pdh)


def list_all(resource: t.Any, **params: t.Any) -> list[dict[str, t.Any]]:
    items: list[dict[str, t.Any]] = []
    while True:
        page = resource.list(limit=PAGE, offset=len(items), order=["uuid asc"], **params).execute()["items"]
        items.extend(page)
        if len(page) < PAGE:
            return items


CLAIM_NAME_PREFIX = "arvados.cluster upload claim "


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Every object's uuid, trashed ones included, for "nothing was created" checks.

    An upload claim the run trashed itself (its upload failed) is not counted: it is how runs take turns, not something
    a run leaves behind. A claim left live would be.
    """

    uuids: frozenset[str]
    trashed_claims: frozenset[str] = frozenset()

    def created_since(self, before: Snapshot) -> set[str]:
        return set(self.uuids - before.uuids - self.trashed_claims)


class ClusterView:
    """Reads the cluster with an admin client; `project_uuid` narrows the image checks to one project."""

    def __init__(self, admin_api: t.Any) -> None:
        self.api = admin_api

    def snapshot(self) -> Snapshot:
        collections = list_all(self.api.collections(), select=["uuid", "name", "is_trashed"], include_trash=True)
        uuids = {item["uuid"] for item in collections}
        uuids.update(item["uuid"] for item in list_all(self.api.groups(), select=["uuid"], include_trash=True))
        uuids.update(item["uuid"] for item in list_all(self.api.links(), select=["uuid"]))
        claims = {item["uuid"] for item in collections if item["is_trashed"] and item["name"].startswith(CLAIM_NAME_PREFIX)}
        return Snapshot(frozenset(uuids), frozenset(claims))

    def collections_of_image(self, project_uuid: str, image_id: str) -> list[dict[str, t.Any]]:
        """The project's live collections holding the image (found by their file name, whatever made them)."""
        collections = list_all(self.api.collections(), filters=[["owner_uuid", "=", project_uuid]],
                               select=["uuid", "portable_data_hash", "manifest_text", "is_trashed", "properties", "name"])
        return [collection for collection in collections if f"{image_id}.tar".replace(":", "\\072") in collection["manifest_text"]]

    def image_links(self, project_uuid: str) -> list[dict[str, t.Any]]:
        return list_all(self.api.links(), filters=[["owner_uuid", "=", project_uuid], ["link_class", "in", list(IMAGE_LINK_CLASSES)]])

    def broken_links(self, project_uuid: str, images: t.Iterable[ExpectedImage]) -> list[str]:
        """The project's links naming these images whose collection is missing, trashed, or not the whole image."""
        images = list(images)
        complete = {image.portable_data_hash for image in images}
        names = {image.image_id for image in images} | {image.repo_tag for image in images}
        problems = []
        for link in self.image_links(project_uuid):
            if link["name"] not in names:
                continue
            found = list_all(self.api.collections(), filters=[["uuid", "=", link["head_uuid"]]], include_trash=True,
                             select=["uuid", "portable_data_hash", "is_trashed"])
            if not found:
                problems.append(f"{link['link_class']} {link['name']} -> missing collection {link['head_uuid']}")
            elif found[0]["is_trashed"]:
                problems.append(f"{link['link_class']} {link['name']} -> trashed collection {link['head_uuid']}")
            elif found[0]["portable_data_hash"] not in complete:
                problems.append(f"{link['link_class']} {link['name']} -> {link['head_uuid']} holds {found[0]['portable_data_hash']}, "
                                f"not a complete image ({sorted(complete)})")
        return problems

    def assert_converged(self, project_uuid: str, image: ExpectedImage) -> dict[str, t.Any]:
        """Exactly one live collection of the image in the project, complete, with both links and no stray ones."""
        collections = [c for c in self.collections_of_image(project_uuid, image.image_id) if not c["is_trashed"]]
        assert len(collections) == 1, f"expected one collection of {image.repo_tag} in {project_uuid}, found {collections}"
        collection = collections[0]
        assert collection["portable_data_hash"] == image.portable_data_hash, (collection, image)
        links = {(link["link_class"], link["name"], link["head_uuid"]) for link in self.image_links(project_uuid)
                 if link["head_uuid"] == collection["uuid"]}
        assert links == {("docker_image_hash", image.image_id, collection["uuid"]),
                         ("docker_image_repo+tag", image.repo_tag, collection["uuid"])}, links
        assert self.broken_links(project_uuid, [image]) == []
        return collection
