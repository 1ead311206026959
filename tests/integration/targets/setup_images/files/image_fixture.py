# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Builds Docker image link sets through the Arvados API, without Docker: small collections whose one file is
named as an image is, and the links, migration links, sharing and trash a spec asks for.

    python image_fixture.py CONTEXT_FILE SPEC_FILE     (prints what it made, as JSON)

CONTEXT_FILE: {"api_host", "users": {name: {"uuid", "token"}}, "system_user_uuid"}.
SPEC_FILE:
  projects:    {key: {"user": "alice", "share_with": ["bob"], "home": false}}  (home: the user's home project)
  collections: [{"key", "project", "format": "v2" | "v1" | "two_files", "same_as": key}]   (same_as: same manifest)
  links:       [{"collection", "class": "hash" | "repo+tag", "name" (repo+tag), "image_timestamp", "project"}]
  migrations:  [{"from", "to", "owner": "system" | user name}]
  trash:       [key, ...]
Links are created in order, each as the user owning its project. Two links of one class with the same name or the
same image timestamp are never created in the same second, since the API server compares whole seconds and breaks
ties at random.
"""
from __future__ import annotations

import json
import os
import sys
import time
import typing as t

import arvados

BLOCK = b"image fixture\n"


class Fixture:
    def __init__(self, context: dict[str, t.Any]) -> None:
        self.context = context
        self.clients: dict[str, t.Any] = {}
        self.projects: dict[str, dict[str, str]] = {}
        self.collections: dict[str, dict[str, t.Any]] = {}
        self.links: list[dict[str, t.Any]] = []
        self._created: list[tuple[int, str, str, t.Any]] = []

    def api(self, user: str) -> t.Any:
        if user not in self.clients:
            self.clients[user] = arvados.api("v1", host=self.context["api_host"], token=self.context["users"][user]["token"],
                                             insecure=True, num_retries=2)
        return self.clients[user]

    def make_project(self, key: str, spec: dict[str, t.Any]) -> None:
        user = spec["user"]
        if spec.get("home"):
            uuid = self.context["users"][user]["uuid"]
        else:
            body = {"group": {"name": spec.get("name", f"image fixture {key}"), "group_class": "project"}}
            uuid = self.api(user).groups().create(body=body, ensure_unique_name=True).execute()["uuid"]
        for reader in spec.get("share_with", []):
            link = {"link_class": "permission", "name": "can_read", "tail_uuid": self.context["users"][reader]["uuid"], "head_uuid": uuid}
            self.api(user).links().create(body={"link": link}).execute()
        self.projects[key] = {"uuid": uuid, "user": user}

    def make_collection(self, spec: dict[str, t.Any]) -> None:
        project = self.projects[spec["project"]]
        source = self.collections.get(spec.get("same_as", ""))
        image_hex = source["hex"] if source else os.urandom(32).hex()
        file_format = source["format"] if source else spec.get("format", "v2")
        api = self.api(project["user"])
        locator = api.keep.put(BLOCK)
        manifest = _manifest(locator, image_hex, file_format)
        created = api.collections().create(body={"collection": {
            "owner_uuid": project["uuid"], "manifest_text": manifest, "name": f"image fixture {spec['key']}",
        }}, ensure_unique_name=True).execute()
        self.collections[spec["key"]] = {
            "uuid": created["uuid"], "portable_data_hash": created["portable_data_hash"], "owner_uuid": created["owner_uuid"],
            "image_id": f"sha256:{image_hex}", "hex": image_hex, "format": file_format, "project": spec["project"],
        }

    def make_link(self, spec: dict[str, t.Any]) -> None:
        collection = self.collections[spec["collection"]]
        project = self.projects[spec.get("project", collection["project"])]
        link_class = {"hash": "docker_image_hash", "repo+tag": "docker_image_repo+tag"}[spec["class"]]
        name = spec["name"] if spec["class"] == "repo+tag" else _hash_link_name(collection)
        timestamp = spec.get("image_timestamp")
        self._wait_for_a_free_second(link_class, name, timestamp)
        body = {"link_class": link_class, "name": name, "head_uuid": collection["uuid"], "owner_uuid": project["uuid"],
                "properties": {"image_timestamp": timestamp} if timestamp else {}}
        created = self.api(project["user"]).links().create(body={"link": body}).execute()
        self._created.append((int(time.time()), link_class, name, timestamp))
        self.links.append({"uuid": created["uuid"], "name": name, "collection": spec["collection"], "created_at": created["created_at"]})

    def _wait_for_a_free_second(self, link_class: str, name: str, timestamp: t.Any) -> None:
        while any(second == int(time.time()) and other_class == link_class and (other_name == name or other_timestamp == timestamp)
                  for second, other_class, other_name, other_timestamp in self._created):
            time.sleep(1.02 - time.time() % 1)

    def make_migration(self, spec: dict[str, t.Any]) -> None:
        owner = spec.get("owner", "system")
        body = {"link_class": "docker_image_migration", "name": "migrate_1.9_1.10",
                "tail_uuid": self.collections[spec["from"]]["portable_data_hash"],
                "head_uuid": self.collections[spec["to"]]["portable_data_hash"]}
        if owner == "system":
            body["owner_uuid"] = self.context["system_user_uuid"]
            owner = "admin"
        self.api(owner).links().create(body={"link": body}).execute()

    def trash(self, key: str) -> None:
        collection = self.collections[key]
        self.api(self.projects[collection["project"]]["user"]).collections().trash(uuid=collection["uuid"]).execute()

    def report(self) -> dict[str, t.Any]:
        return {"projects": {key: project["uuid"] for key, project in self.projects.items()},
                "collections": self.collections, "links": self.links}


def _manifest(locator: str, image_hex: str, file_format: str) -> str:
    size = len(BLOCK)
    if file_format == "v1":
        files = f"0:{size}:{image_hex}.tar"
    elif file_format == "two_files":
        files = f"0:{size}:sha256\\072{image_hex}.tar 0:{size}:README"
    else:
        files = f"0:{size}:sha256\\072{image_hex}.tar"
    return f". {locator} {files}\n"


def _hash_link_name(collection: dict[str, t.Any]) -> str:
    # arv-keepdocker names the hash link after the id Docker reports: bare hex for v1 images.
    return collection["hex"] if collection["format"] == "v1" else collection["image_id"]


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as context_file:
        context = json.load(context_file)
    with open(sys.argv[2], encoding="utf-8") as spec_file:
        spec = json.load(spec_file)
    fixture = Fixture(context)
    for key, project in spec.get("projects", {}).items():
        fixture.make_project(key, project)
    for collection in spec.get("collections", []):
        fixture.make_collection(collection)
    for link in spec.get("links", []):
        fixture.make_link(link)
    for migration in spec.get("migrations", []):
        fixture.make_migration(migration)
    for key in spec.get("trash", []):
        fixture.trash(key)
    json.dump(fixture.report(), sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
