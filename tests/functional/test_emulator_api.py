"""The emulator's REST API through the real Python SDK and plain HTTP: shapes, list semantics, errors, rules."""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import re
import time
import typing as t
import uuid as uuidlib

import arvados
import arvados.errors
import arvados.util
import pytest
import requests

UUID = re.compile(r"^zzzzz-[a-z0-9]{5}-[a-z0-9]{15}$")
REQUEST_ID = re.compile(r"\(req-[0-9a-z]{20}\)$")
SIGNED = re.compile(r"^[0-9a-f]{32}\+[0-9]+\+A[0-9a-f]{40}@[0-9a-f]{8}$")


def unique(prefix: str) -> str:
    return f"{prefix} {uuidlib.uuid4().hex[:10]}"


def raw(emulator: t.Any, method: str, path: str, user: str | None = "alice", token: str | None = None,
        **kwargs: t.Any) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    token = token or (emulator.token(user) if user else None)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, f"https://{emulator.api_host}{path}", headers=headers,
                            verify=emulator.certificate, timeout=30, **kwargs)


def api_failure(call: t.Any) -> arvados.errors.ApiError:
    with pytest.raises(arvados.errors.ApiError) as failure:
        call.execute()
    return failure.value


def status_of(failure: arvados.errors.ApiError) -> int:
    return int(failure.resp.status)


def errors_of(failure: arvados.errors.ApiError) -> list[str]:
    return json.loads(failure.content)["errors"]


def put_block(emulator: t.Any, data: bytes, user: str = "alice", replicas: int = 2) -> requests.Response:
    digest = hashlib.md5(data).hexdigest()
    return requests.put(f"{emulator.keep_url}{digest}", data=data, timeout=30, headers={
        "Authorization": f"Bearer {emulator.token(user)}", "X-Keep-Desired-Replicas": str(replicas)})


def signed_manifest(emulator: t.Any, data: bytes, name: str = "file.txt", user: str = "alice") -> str:
    locator = put_block(emulator, data, user).text.strip()
    return f". {locator} 0:{len(data)}:{name}\n"


def new_project(api: t.Any, name: str | None = None, owner_uuid: str | None = None) -> dict:
    body = {"name": name or unique("project"), "group_class": "project"}
    if owner_uuid:
        body["owner_uuid"] = owner_uuid
    return api.groups().create(body={"group": body}).execute()


def new_collection(emulator: t.Any, api: t.Any, owner_uuid: str | None = None, name: str | None = None,
                   data: bytes = b"emulator test data", user: str = "alice", **attrs: t.Any) -> dict:
    body = {"name": name or unique("collection"), "manifest_text": signed_manifest(emulator, data, user=user), **attrs}
    if owner_uuid:
        body["owner_uuid"] = owner_uuid
    return api.collections().create(body=body).execute()


@pytest.fixture(scope="module")
def alice(emulator):
    return emulator.api("alice", num_retries=0)


@pytest.fixture(scope="module")
def bob(emulator):
    return emulator.api("bob", num_retries=0)


@pytest.fixture(scope="module")
def admin(emulator):
    return emulator.api("admin", num_retries=0)


# Discovery, config, users

def test_discovery_describes_the_emulator(emulator):
    response = raw(emulator, "GET", "/discovery/v1/apis/arvados/v1/rest", user=None)
    assert response.status_code == 200
    document = response.json()
    assert document["rootUrl"] == f"https://{emulator.api_host}/"
    assert document["servicePath"] == "arvados/v1/"
    assert document["dockerImageFormats"] == ["v2"]
    assert document["defaultCollectionReplication"] == 2
    assert document["uuidPrefix"] == "zzzzz"
    assert document["revision"] == "20250402"
    assert document["blobSignatureTtl"] == 1209600
    for resource in document["resources"].values():
        for method in resource["methods"].values():
            assert "response" in method
            if method["httpMethod"] in ("POST", "PUT") and not method["path"].endswith(("trash", "untrash")):
                assert "request" in method
            for name in ("filters", "order", "select"):
                if name in method["parameters"]:
                    assert method["parameters"][name]["type"] == "array"
    list_params = document["resources"]["collections"]["methods"]["list"]["parameters"]
    assert {"filters", "where", "order", "select", "limit", "offset", "count", "include_trash"} <= set(list_params)
    assert list_params["where"]["type"] == "object"


def test_config_needs_no_token(emulator):
    response = raw(emulator, "GET", "/arvados/v1/config", user=None)
    assert response.status_code == 200
    assert response.json()["StorageClasses"]["default"]["Default"] is True


def test_current_user_and_user_records(emulator, alice):
    me = alice.users().current().execute()
    assert me["uuid"] == emulator.users["alice"]["uuid"]
    assert me["kind"] == "arvados#user" and me["username"] == "alice" and me["is_admin"] is False
    bob_record = alice.users().get(uuid=emulator.users["bob"]["uuid"]).execute()
    assert bob_record["username"] == "bob"
    assert {user["username"] for user in alice.users().list().execute()["items"]} >= {"alice", "bob", "admin"}


def test_missing_or_bad_token_is_401_with_the_error_body(emulator):
    for token in (None, "v2/zzzzz-gj3su-000000000000000/nope", "nope"):
        response = raw(emulator, "GET", "/arvados/v1/users/current", user=None, token=token,
                       headers={"X-Request-Id": "req-0123456789abcdefghij"})
        assert response.status_code == 401
        body = response.json()
        assert body["errors"][0].endswith("Not logged in (req-0123456789abcdefghij)")
        assert re.match(r"^[0-9]+\+[0-9a-f]{8}$", body["error_token"])
        assert response.headers["X-Request-Id"] == "req-0123456789abcdefghij"


def test_expired_token_is_401(emulator):
    fresh = emulator.mint_token("bob", "2999-01-01T00:00:00Z")
    assert raw(emulator, "GET", "/arvados/v1/users/current", token=fresh).json()["username"] == "bob"
    expired = emulator.mint_token("bob", "2001-01-01T00:00:00Z")
    assert raw(emulator, "GET", "/arvados/v1/users/current", token=expired).status_code == 401
    failure = api_failure(arvados.api("v1", host=emulator.api_host, token=expired, insecure=True, num_retries=0)
                          .collections().list())
    assert status_of(failure) == 401


def test_unknown_path_is_404_path_not_found(emulator):
    response = raw(emulator, "GET", "/arvados/v1/nonsense")
    assert response.status_code == 404
    assert "Path not found" in response.json()["errors"][0]


def test_token_resource(emulator, alice):
    current = alice.api_client_authorizations().current().execute()
    assert emulator.token("alice").endswith("/" + current["api_token"])
    assert current["owner_uuid"] == emulator.users["alice"]["uuid"]


# Lists: paging, select, order, limit, count, method override

def populate(emulator: t.Any, owner_uuid: str, count: int) -> None:
    def make(first: int) -> None:
        api = emulator.api("alice", num_retries=2)
        for number in range(first, count, 8):
            api.links().create(body={"link_class": "emulator-test", "name": f"row {number}", "head_uuid": owner_uuid,
                                     "owner_uuid": owner_uuid}).execute()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(8)))


@pytest.fixture(scope="module")
def paging_projects(emulator, alice):
    projects = {}
    for count in (1000, 1500):
        project = new_project(alice, unique(f"paging {count}"))
        populate(emulator, project["uuid"], count)
        projects[count] = project["uuid"]
    return projects


def list_calls(emulator: t.Any) -> list[dict]:
    return [entry for entry in emulator.request_log()["entries"]
            if entry["method"] == "GET" and entry["path"] == "/arvados/v1/links"]


@pytest.mark.parametrize("count, calls", [(1000, 2), (1500, 3)])
def test_keyset_list_all_pages_through_everything(emulator, alice, paging_projects, count, calls):
    emulator.reset_request_log()
    rows = list(arvados.util.keyset_list_all(alice.links().list, filters=[["owner_uuid", "=", paging_projects[count]]]))
    assert len(rows) == count
    assert len({row["uuid"] for row in rows}) == count
    created = [row["created_at"] for row in rows]
    assert created == sorted(created)
    assert len(list_calls(emulator)) == calls


def test_created_at_round_trips_exactly(alice, paging_projects):
    project = paging_projects[1000]
    first = alice.links().list(filters=[["owner_uuid", "=", project]], order=["created_at asc", "uuid asc"], limit=1).execute()["items"][0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", first["created_at"])
    same = alice.links().list(filters=[["owner_uuid", "=", project], ["created_at", "=", first["created_at"]]]).execute()
    assert first["uuid"] in [row["uuid"] for row in same["items"]]
    later = alice.links().list(filters=[["owner_uuid", "=", project], ["created_at", ">", first["created_at"]]],
                               count="none", limit=1000).execute()
    assert first["uuid"] not in [row["uuid"] for row in later["items"]]


def test_limit_offset_count_and_clamping(alice, paging_projects):
    owner = [["owner_uuid", "=", paging_projects[1500]]]
    default = alice.links().list(filters=owner).execute()
    assert default["kind"] == "arvados#linkList" and default["limit"] == 100 and len(default["items"]) == 100
    assert default["items_available"] == 1500 and default["offset"] == 0
    clamped = alice.links().list(filters=owner, limit=5000, count="none").execute()
    assert clamped["limit"] == 1000 and len(clamped["items"]) == 1000 and "items_available" not in clamped
    tail = alice.links().list(filters=owner, limit=1000, offset=1000).execute()
    assert len(tail["items"]) == 500 and tail["offset"] == 1000
    assert alice.links().list(filters=owner, limit=0).execute()["items"] == []


def test_order_and_tie_breaker(alice, paging_projects):
    owner = [["owner_uuid", "=", paging_projects[1000]]]
    names = [row["name"] for row in alice.links().list(filters=owner, order=["name desc"], limit=5).execute()["items"]]
    assert names == sorted(names, reverse=True)
    default = alice.links().list(filters=owner, limit=50).execute()["items"]
    keys = [(row["modified_at"], row["uuid"]) for row in default]
    assert keys == sorted(keys, reverse=True)


def test_select_returns_only_those_fields(alice, paging_projects):
    items = alice.links().list(filters=[["owner_uuid", "=", paging_projects[1000]]], select=["uuid", "name"], limit=3).execute()["items"]
    assert all(set(item) == {"uuid", "name", "kind", "etag"} for item in items)
    failure = api_failure(alice.links().list(select=["uuid", "bogus"]))
    assert status_of(failure) == 422
    assert "Invalid attribute 'bogus' of Link in select parameter" in errors_of(failure)[0]


def test_long_queries_use_method_override(emulator, alice, paging_projects):
    owner = paging_projects[1000]
    uuids = [row["uuid"] for row in alice.links().list(filters=[["owner_uuid", "=", owner]], limit=60, select=["uuid"]).execute()["items"]]
    emulator.reset_request_log()
    found = alice.links().list(filters=[["uuid", "in", uuids]], limit=1000).execute()
    assert sorted(row["uuid"] for row in found["items"]) == sorted(uuids)
    assert any(entry["method_override"] for entry in list_calls(emulator))
    form = {"filters": json.dumps([["uuid", "in", uuids]]), "limit": "1000", "count": "none"}
    response = raw(emulator, "POST", "/arvados/v1/links", data=form, headers={"X-HTTP-Method-Override": "GET"})
    assert response.status_code == 200 and len(response.json()["items"]) == 60


def test_where_and_in_empty(alice, paging_projects):
    owner = paging_projects[1000]
    assert alice.links().list(where={"owner_uuid": owner}, limit=1).execute()["items_available"] == 1000
    assert alice.links().list(filters=[["uuid", "in", []]]).execute()["items"] == []


@pytest.mark.parametrize("filters, message", [
    ([["bogus", "=", "x"]], "Invalid attribute 'bogus' in filter"),
    ([["name", "bogus", "x"]], "Invalid operator 'bogus'"),
])
def test_bad_filters_are_422(alice, filters, message):
    failure = api_failure(alice.collections().list(filters=filters))
    assert status_of(failure) == 422
    assert message in errors_of(failure)[0]
    assert REQUEST_ID.search(errors_of(failure)[0])


# Collections: signatures, PDH, names, trash

def test_keep_put_returns_a_signed_locator(emulator):
    response = put_block(emulator, b"keep put test", replicas=3)
    assert response.status_code == 200
    assert SIGNED.match(response.text.strip())
    assert response.headers["X-Keep-Replicas-Stored"] == "3"
    assert response.headers["X-Keep-Storage-Classes-Confirmed"] == "default=3"


def test_keep_get_checks_signatures(emulator):
    data = b"keep get test"
    locator = put_block(emulator, data).text.strip()
    url = f"{emulator.keep_url}{locator}"
    auth = {"Authorization": f"Bearer {emulator.token('alice')}"}
    assert requests.get(url, headers=auth, timeout=30).content == data
    head = requests.head(url, headers=auth, timeout=30)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {emulator.token('bob')}"}, timeout=30).status_code == 400
    unsigned = locator.split("+A")[0]
    assert requests.get(f"{emulator.keep_url}{unsigned}", headers=auth, timeout=30).status_code == 400
    bad = requests.put(f"{emulator.keep_url}{'0' * 32}", data=data, headers=auth, timeout=30)
    assert bad.status_code == 400 and "did not match" in bad.text


def test_keep_head_checks_signatures_as_keepstore_does(emulator):
    """keepstore answers HEAD as GET: 401 for an expired signature (checked before the signature itself), 400 for
    another token's, 200 for the token that wrote the block."""
    locator = put_block(emulator, b"keep head test").text.strip()
    alice, bob = ({"Authorization": f"Bearer {emulator.token(user)}"} for user in ("alice", "bob"))
    signed, _at, expiry = locator.rpartition("@")
    expired = f"{signed}@{int(time.time()) - 60:08x}"
    assert int(expiry, 16) > time.time()
    assert requests.head(f"{emulator.keep_url}{locator}", headers=alice, timeout=30).status_code == 200
    assert requests.head(f"{emulator.keep_url}{expired}", headers=alice, timeout=30).status_code == 401
    assert requests.head(f"{emulator.keep_url}{locator}", headers=bob, timeout=30).status_code == 400
    assert requests.head(f"{emulator.keep_url}{locator}", timeout=30).status_code == 401


def test_collection_create_stores_unsigned_and_returns_signed(emulator, alice):
    data = b"signed and stored"
    manifest = signed_manifest(emulator, data, "a\\040file.txt")
    created = alice.collections().create(body={"collection": {"name": unique("signed"), "manifest_text": manifest}}).execute()
    assert UUID.match(created["uuid"]) and created["kind"] == "arvados#collection"
    locator = f"{hashlib.md5(data).hexdigest()}+{len(data)}"
    unsigned = f". {locator} 0:{len(data)}:a\\040file.txt\n"
    assert created["portable_data_hash"] == f"{hashlib.md5(unsigned.encode()).hexdigest()}+{len(unsigned)}"
    assert "+A" in created["manifest_text"]
    assert created["file_count"] == 1 and created["file_size_total"] == len(data)
    assert created["storage_classes_desired"] == ["default"] and created["is_trashed"] is False
    listed = alice.collections().list(filters=[["uuid", "=", created["uuid"]]]).execute()["items"][0]
    assert listed["unsigned_manifest_text"] == unsigned
    fetched = alice.collections().get(uuid=created["uuid"]).execute()
    assert fetched["manifest_text"].split(" ")[1].startswith(locator + "+A")
    by_pdh = alice.collections().get(uuid=created["portable_data_hash"]).execute()
    assert by_pdh["portable_data_hash"] == created["portable_data_hash"] and "+A" in by_pdh["manifest_text"]


def test_collection_create_with_a_wrapped_or_plain_body(emulator, alice):
    plain = alice.collections().create(body={"name": unique("plain"), "manifest_text": ""}).execute()
    assert plain["manifest_text"] == "" and plain["portable_data_hash"] == "d41d8cd98f00b204e9800998ecf8427e+0"


@pytest.mark.parametrize("signer", ["nobody", "bob"])
def test_unsigned_or_foreign_locators_are_403(emulator, alice, signer):
    data = f"signature test {signer}".encode()
    locator = f"{hashlib.md5(data).hexdigest()}+{len(data)}"
    if signer == "bob":
        locator = put_block(emulator, data, user="bob").text.strip()
    else:
        put_block(emulator, data)
    failure = api_failure(alice.collections().create(body={"manifest_text": f". {locator} 0:{len(data)}:x\n"}))
    assert status_of(failure) == 403
    assert "PermissionDeniedError" in errors_of(failure)[0]


def test_admin_skips_signature_checks(emulator, admin):
    data = b"admin writes unsigned"
    put_block(emulator, data)
    manifest = f". {hashlib.md5(data).hexdigest()}+{len(data)} 0:{len(data)}:x\n"
    assert admin.collections().create(body={"manifest_text": manifest, "name": unique("admin")}).execute()["uuid"]


def test_client_portable_data_hash_must_match(emulator, alice):
    manifest = signed_manifest(emulator, b"pdh check")
    failure = api_failure(alice.collections().create(body={"manifest_text": manifest, "portable_data_hash": "0" * 32 + "+1"}))
    assert status_of(failure) == 422 and "does not match computed hash" in errors_of(failure)[0]


def test_invalid_manifest_is_422(alice):
    failure = api_failure(alice.collections().create(body={"manifest_text": ". nonsense\n"}))
    assert status_of(failure) == 422 and "Manifest text Manifest invalid for stream 1" in errors_of(failure)[0]


def test_unique_names_and_ensure_unique_name(emulator, alice):
    project = new_project(alice)
    name = unique("twin")
    first = new_collection(emulator, alice, project["uuid"], name)
    failure = api_failure(alice.collections().create(body={"name": name, "owner_uuid": project["uuid"]}))
    assert status_of(failure) == 422
    assert 'duplicate key value violates unique constraint "index_collections_on_owner_uuid_and_name"' in errors_of(failure)[0]
    second = alice.collections().create(body={"name": name, "owner_uuid": project["uuid"]}, ensure_unique_name=True).execute()
    assert second["name"] == f"{name} ({second['uuid'][-15:]})"
    alice.collections().delete(uuid=first["uuid"]).execute()
    third = alice.collections().create(body={"name": name, "owner_uuid": project["uuid"]}).execute()
    assert third["name"] == name
    group_failure = api_failure(alice.groups().create(body={"name": project["name"], "group_class": "project"}))
    assert status_of(group_failure) == 422 and "index_groups_on_owner_uuid_and_name" in errors_of(group_failure)[0]


def test_trash_untrash_and_delete(emulator, alice):
    collection = new_collection(emulator, alice)
    uuid = collection["uuid"]
    trashed = alice.collections().trash(uuid=uuid).execute()
    assert trashed["is_trashed"] is True and trashed["trash_at"] and trashed["delete_at"]
    assert "+A" not in trashed["manifest_text"]
    assert status_of(api_failure(alice.collections().get(uuid=uuid))) == 404
    assert alice.collections().get(uuid=uuid, include_trash=True).execute()["is_trashed"] is True
    assert alice.collections().list(filters=[["uuid", "=", uuid]]).execute()["items"] == []
    assert len(alice.collections().list(filters=[["uuid", "=", uuid]], include_trash=True).execute()["items"]) == 1
    restored = alice.collections().untrash(uuid=uuid).execute()
    assert restored["is_trashed"] is False and restored["trash_at"] is None
    failure = api_failure(alice.collections().untrash(uuid=uuid))
    assert status_of(failure) == 422 and "Item is not trashed, cannot untrash" in errors_of(failure)[0]
    deleted = alice.collections().delete(uuid=uuid).execute()
    assert deleted["is_trashed"] is True and deleted["uuid"] == uuid


def test_update_replaces_properties_and_rechecks_changed_manifests(emulator, alice):
    collection = new_collection(emulator, alice, properties={"a": "1", "b": "2"})
    updated = alice.collections().update(uuid=collection["uuid"], body={"properties": {"c": "3"}}).execute()
    assert updated["properties"] == {"c": "3"}
    assert updated["modified_at"] >= collection["modified_at"]
    resent = alice.collections().update(uuid=collection["uuid"], body={"manifest_text": updated["manifest_text"]}).execute()
    assert resent["portable_data_hash"] == collection["portable_data_hash"]
    data = b"unsigned update"
    put_block(emulator, data)
    failure = api_failure(alice.collections().update(
        uuid=collection["uuid"], body={"manifest_text": f". {hashlib.md5(data).hexdigest()}+{len(data)} 0:{len(data)}:x\n"}))
    assert status_of(failure) == 403


def test_properties_filters(emulator, alice):
    marker = uuidlib.uuid4().hex
    tagged = new_collection(emulator, alice, properties={"marker": marker, "docker-image-repo-tag": "tiny:1.0", "list": ["x", "y"]})
    other = new_collection(emulator, alice, properties={"marker": marker})

    def found(extra: list) -> set:
        filters = [["properties.marker", "=", marker], *extra]
        return {row["uuid"] for row in alice.collections().list(filters=filters).execute()["items"]}

    assert found([]) == {tagged["uuid"], other["uuid"]}
    assert found([["properties.docker-image-repo-tag", "=", "tiny:1.0"]]) == {tagged["uuid"]}
    assert found([["properties.docker-image-repo-tag", "exists", True]]) == {tagged["uuid"]}
    assert found([["properties.docker-image-repo-tag", "exists", False]]) == {other["uuid"]}
    assert found([["properties", "exists", "list"]]) == {tagged["uuid"]}
    assert found([["properties.list", "contains", "y"]]) == {tagged["uuid"]}


def test_link_class_name_is_rejected(emulator, alice):
    collection = new_collection(emulator, alice)
    failure = api_failure(alice.links().create(body={"link_class": "name", "name": "x", "head_uuid": collection["uuid"]}))
    assert status_of(failure) == 422 and "Name links are obsolete" in errors_of(failure)[0]


def test_links_get_update_delete(emulator, alice):
    collection = new_collection(emulator, alice)
    link = alice.links().create(body={"link": {"link_class": "docker_image_hash", "name": "sha256:" + "0" * 64,
                                               "head_uuid": collection["uuid"], "properties": {"image_timestamp": "2026-01-01T00:00:00Z"}}}).execute()
    assert link["head_kind"] == "arvados#collection" and link["tail_uuid"] is None and link["created_at"]
    assert alice.links().get(uuid=link["uuid"]).execute()["name"] == link["name"]
    updated = alice.links().update(uuid=link["uuid"], body={"properties": {}}).execute()
    assert updated["properties"] == {}
    assert alice.links().delete(uuid=link["uuid"]).execute()["uuid"] == link["uuid"]
    assert status_of(api_failure(alice.links().get(uuid=link["uuid"]))) == 404


def test_keep_services_accessible(emulator, alice):
    services = alice.keep_services().accessible().execute()["items"]
    assert len(services) == 1
    service = services[0]
    assert service["service_type"] == "disk" and service["service_ssl_flag"] is False
    assert f"http://{service['service_host']}:{service['service_port']}/" == emulator.keep_url


# Projects and permissions

def test_group_class_is_validated(alice):
    failure = api_failure(alice.groups().create(body={"group": {"name": unique("bad"), "group_class": "folder"}}))
    assert status_of(failure) == 422
    assert "Group class value must be one of 'project', 'role' or 'filter', was 'folder'" in errors_of(failure)[0]


def test_projects_are_private_until_shared(emulator, alice, bob):
    project = new_project(alice)
    collection = new_collection(emulator, alice, project["uuid"])
    assert status_of(api_failure(bob.groups().get(uuid=project["uuid"]))) == 404
    assert status_of(api_failure(bob.collections().get(uuid=collection["uuid"]))) == 404
    assert bob.collections().list(filters=[["owner_uuid", "=", project["uuid"]]]).execute()["items"] == []
    link = alice.links().create(body={"link_class": "permission", "name": "can_read", "tail_uuid": emulator.users["bob"]["uuid"],
                                      "head_uuid": project["uuid"]}).execute()
    assert link["owner_uuid"] == emulator.system_user_uuid
    shared = bob.groups().get(uuid=project["uuid"]).execute()
    assert shared["can_write"] is False and shared["can_manage"] is False
    readable = bob.collections().get(uuid=collection["uuid"]).execute()
    assert "+A" in readable["manifest_text"]
    failure = api_failure(bob.collections().create(body={"name": unique("intruder"), "owner_uuid": project["uuid"]}))
    assert status_of(failure) == 403
    assert "Owner uuid cannot be set or changed without write permission on new owner" in errors_of(failure)[0]
    alice.links().update(uuid=link["uuid"], body={"name": "can_write"}).execute()
    assert bob.collections().create(body={"name": unique("guest"), "owner_uuid": project["uuid"]}).execute()["uuid"]
    alice.links().delete(uuid=link["uuid"]).execute()
    assert status_of(api_failure(bob.collections().get(uuid=collection["uuid"]))) == 404


def test_subprojects_inherit_sharing(emulator, alice, bob):
    project = new_project(alice)
    inner = new_project(alice, owner_uuid=project["uuid"])
    collection = new_collection(emulator, alice, inner["uuid"])
    alice.links().create(body={"link_class": "permission", "name": "can_read", "tail_uuid": emulator.users["bob"]["uuid"],
                               "head_uuid": project["uuid"]}).execute()
    assert bob.collections().get(uuid=collection["uuid"]).execute()["uuid"] == collection["uuid"]


def test_only_managers_grant_permissions(emulator, alice, bob):
    project = new_project(alice)
    grant = {"link_class": "permission", "name": "can_write", "tail_uuid": emulator.users["bob"]["uuid"],
             "head_uuid": project["uuid"]}
    unseen = api_failure(bob.links().create(body=grant))
    assert status_of(unseen) == 422 and f"Head uuid '{project['uuid']}' not found" in errors_of(unseen)[0]
    alice.links().create(body={**grant, "name": "can_read"}).execute()
    refused = api_failure(bob.links().create(body=grant))
    assert status_of(refused) == 403


def test_trashed_project_hides_contents_and_refuses_new_ones(emulator, alice):
    project = new_project(alice)
    inner = new_project(alice, owner_uuid=project["uuid"])
    collection = new_collection(emulator, alice, inner["uuid"])
    alice.groups().trash(uuid=project["uuid"]).execute()
    assert status_of(api_failure(alice.groups().get(uuid=project["uuid"]))) == 404
    assert status_of(api_failure(alice.collections().get(uuid=collection["uuid"]))) == 404
    assert alice.collections().list(filters=[["owner_uuid", "=", inner["uuid"]]]).execute()["items"] == []
    assert len(alice.collections().list(filters=[["owner_uuid", "=", inner["uuid"]]], include_trash=True).execute()["items"]) == 1
    failure = api_failure(alice.collections().create(body={"name": unique("late"), "owner_uuid": project["uuid"]}))
    assert status_of(failure) == 422 and f"Owner uuid '{project['uuid']}' not found" in errors_of(failure)[0]
    alice.groups().untrash(uuid=project["uuid"]).execute()
    assert alice.collections().get(uuid=collection["uuid"]).execute()["uuid"] == collection["uuid"]


def test_admin_sees_everything(emulator, alice, admin):
    project = new_project(alice)
    assert admin.groups().get(uuid=project["uuid"]).execute()["owner_uuid"] == emulator.users["alice"]["uuid"]
