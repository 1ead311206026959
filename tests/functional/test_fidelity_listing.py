"""Upstream list_images_in_arv against the emulator: by name, by hash prefix, by project, and many images.

Images here are registered cheaply through the API (one small Keep block shared by every manifest, a
collection and its two links per image), which is all the listing reads.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import uuid as uuidlib

import arvados
import pytest
from arvados.commands.keepdocker import list_images_in_arv

from upstream import create_project, escape_manifest_name, method_override_requests

EPOCH = datetime.datetime(2024, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
PLACEHOLDER = b"not really a docker image\n"


@dataclasses.dataclass(frozen=True)
class RegisteredImage:
    collection_uuid: str
    image_id: str
    repo: str
    tag: str
    timestamp: str


class ImageRegistry:
    """Registers fake Docker images for one user: collection (one `sha256:<hex>.tar` file) + hash and repo+tag links."""

    def __init__(self, api) -> None:
        self.api = api
        self.locator = arvados.KeepClient(api_client=api).put(PLACEHOLDER, copies=1)
        self.serial = 0

    def register(self, repo: str, tag: str, owner_uuid: str | None = None, minutes: int | None = None) -> RegisteredImage:
        self.serial += 1
        image_id = "sha256:" + hashlib.sha256(f"{repo}:{tag}:{self.serial}:{uuidlib.uuid4()}".encode()).hexdigest()
        offset = datetime.timedelta(minutes=self.serial if minutes is None else minutes)
        timestamp = (EPOCH + offset).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "manifest_text": f". {self.locator} 0:{len(PLACEHOLDER)}:{escape_manifest_name(image_id + '.tar')}\n",
            "name": f"Docker image {repo.replace('/', ' ')}:{tag} {image_id[:12]}",
            "properties": {"docker-image-repo-tag": f"{repo}:{tag}"},
        }
        link_owner = {}
        if owner_uuid is not None:
            body["owner_uuid"] = owner_uuid
            link_owner["owner_uuid"] = owner_uuid
        collection = self.api.collections().create(body=body, ensure_unique_name=True).execute()
        for link_class, name in (("docker_image_hash", image_id), ("docker_image_repo+tag", f"{repo}:{tag}")):
            self.api.links().create(body={
                "link_class": link_class, "name": name, "head_uuid": collection["uuid"],
                "properties": {"image_timestamp": timestamp}, **link_owner,
            }).execute()
        return RegisteredImage(collection["uuid"], image_id, repo, tag, timestamp)


def listing(api, **kwargs) -> list[tuple[str, str, str, str]]:
    """(collection, image id, repo, tag) in the order list_images_in_arv prefers them."""
    return [
        (collection_uuid, info["dockerhash"], info["repo"], info["tag"])
        for collection_uuid, info in list_images_in_arv(api, 2, **kwargs)
    ]


def row(image: RegisteredImage) -> tuple[str, str, str, str]:
    return (image.collection_uuid, image.image_id, image.repo, image.tag)


@pytest.fixture(scope="module")
def catalog(emulator):
    """alice's images: three in a project of her own, one newer `alpha:v1` in her home project."""
    api = emulator.api(user="alice")
    registry = ImageRegistry(api)
    suffix = uuidlib.uuid4().hex[:8]
    project_uuid = create_project(api, "fidelity listing")
    alpha, beta = f"fid-list/alpha-{suffix}", f"fid-list/beta-{suffix}"
    return {
        "api": api,
        "project": project_uuid,
        "alpha": alpha,
        "beta": beta,
        "alpha_v1": registry.register(alpha, "v1", project_uuid),
        "alpha_v2": registry.register(alpha, "v2", project_uuid),
        "beta_v1": registry.register(beta, "v1", project_uuid),
        "alpha_v1_home": registry.register(alpha, "v1"),
    }


def test_image_name_and_tag(catalog):
    found = listing(catalog["api"], image_name=catalog["alpha"], image_tag="v1")
    # Newest image_timestamp first: the home-project upload was registered last.
    assert found == [row(catalog["alpha_v1_home"]), row(catalog["alpha_v1"])]


def test_image_name_defaults_to_latest(catalog):
    assert listing(catalog["api"], image_name=catalog["alpha"]) == []


def test_hash_prefix_as_image_name(catalog):
    image = catalog["beta_v1"]
    assert listing(catalog["api"], image_name=image.image_id[:19]) == [row(image)]
    # ilike: the prefix matches whatever its case.
    assert listing(catalog["api"], image_name=image.image_id[:19].upper()) == [row(image)]
    # Link names start with "sha256:", so a bare hex prefix matches nothing.
    assert listing(catalog["api"], image_name=image.image_id[7:19]) == []


def test_project_uuid(catalog):
    in_project = listing(catalog["api"], project_uuid=catalog["project"])
    assert sorted(in_project) == sorted(row(catalog[key]) for key in ("alpha_v1", "alpha_v2", "beta_v1"))
    assert listing(catalog["api"], image_name=catalog["alpha"], image_tag="v1", project_uuid=catalog["project"]) == [
        row(catalog["alpha_v1"])
    ]


def test_unknown_name_lists_nothing(catalog):
    assert listing(catalog["api"], image_name=f"{catalog['alpha']}-missing", image_tag="v1") == []


def test_trashed_collection_is_not_listed(catalog, emulator):
    registry = ImageRegistry(catalog["api"])
    image = registry.register(f"{catalog['beta']}-trash", "v1", catalog["project"])
    assert listing(catalog["api"], image_name=image.repo, image_tag="v1") == [row(image)]
    catalog["api"].collections().delete(uuid=image.collection_uuid).execute()
    assert listing(catalog["api"], image_name=image.repo, image_tag="v1") == []


def test_many_images_switch_to_method_override(fresh_emulator):
    api = fresh_emulator.api(user="alice")
    registry = ImageRegistry(api)
    registered = [registry.register(f"fid-many/image-{index:02d}", "1.0") for index in range(64)]

    fresh_emulator.reset_request_log()
    found = listing(api)
    assert found == [row(image) for image in reversed(registered)]
    overridden = method_override_requests(fresh_emulator.request_log(), "/arvados/v1/collections")
    assert overridden, "the collections lookup of 64 uuids should arrive as POST with X-HTTP-Method-Override: GET"


def test_images_in_trashed_project_are_not_listed(catalog):
    api = catalog["api"]
    project_uuid = create_project(api, "fidelity trashed")
    image = ImageRegistry(api).register(f"{catalog['alpha']}-in-trash", "v1", project_uuid)
    assert listing(api, image_name=image.repo, image_tag="v1") == [row(image)]
    api.groups().trash(uuid=project_uuid).execute()
    assert listing(api, image_name=image.repo, image_tag="v1") == []
    assert listing(api, image_name=image.image_id) == []
