"""The arvados_docker_image lookup, loaded by Ansible's plugin loader from a staged copy of this checkout, reading
the emulator over HTTPS with its own client."""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import typing as t

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar

from helpers import ImageCollections, importable_collection
from upstream import create_project

LOOKUP = "arvados.cluster.arvados_docker_image"
HASH = "docker_image_hash"
REPO_TAG = "docker_image_repo+tag"
BUILT_2024 = "2024-01-01T00:00:00Z"
BUILT_2025 = "2025-01-01T00:00:00Z"
SAME_SECOND_ATTEMPTS = 5


@dataclasses.dataclass(frozen=True)
class TinyImages:
    """`<prefix>/tiny:1.0` on two images: the newer build in `other_project`, the older one tagged later in `project`."""

    maker: ImageCollections
    prefix: str
    project: str
    other_project: str
    old: dict[str, t.Any]
    new: dict[str, t.Any]
    hex_old: str
    hex_new: str

    @property
    def tiny(self) -> str:
        return f"{self.prefix}/tiny:1.0"


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> t.Iterator[None]:
    with importable_collection(tmp_path_factory.mktemp("staged")):
        yield


@pytest.fixture(scope="module")
def images(emulator) -> TinyImages:
    maker = ImageCollections(emulator.api("alice"))
    project, other_project = (create_project(maker.api, "lookup") for _index in range(2))
    prefix = f"lookup-{os.urandom(4).hex()}"
    hex_old, hex_new = os.urandom(32).hex(), os.urandom(32).hex()
    old = maker.image(hex_old, project, BUILT_2024)
    new = maker.image(hex_new, other_project, BUILT_2025, [f"{prefix}/tiny:1.0"])
    maker.link(REPO_TAG, f"{prefix}/tiny:1.0", old["uuid"], project, BUILT_2024)
    return TinyImages(maker, prefix, project, other_project, old, new, hex_old, hex_new)


@pytest.fixture()
def lookup(staged) -> t.Any:
    """The lookup as a task gets it: with a loader and a templar (which templates the connection variables)."""
    loader = DataLoader()
    return lookup_loader.get(LOOKUP, loader=loader, templar=Templar(loader=loader))


@pytest.fixture()
def connection(emulator) -> dict[str, t.Any]:
    return {"api_host": emulator.api_host, "api_token": emulator.token("alice"), "api_insecure": True}


@pytest.fixture()
def warnings(lookup, monkeypatch) -> list[str]:
    """The warnings the lookup shows, in order (Ansible's display would show each text once per process)."""
    seen: list[str] = []
    display = sys.modules[type(lookup).__module__].display
    monkeypatch.setattr(display, "warning", lambda message, *args, **kwargs: seen.append(message))
    return seen


def api_requests(emulator: t.Any) -> list[str]:
    return [f"{entry['method']} {entry['path']}" for entry in emulator.request_log()["entries"] if entry["service"] == "api"]


def links_in_one_second(maker: ImageCollections, name: str, head_uuids: list[str], project: str) -> list[dict[str, t.Any]]:
    """Links named `name` on each head, created within one second (the server breaks such ties at random)."""
    for _attempt in range(SAME_SECOND_ATTEMPTS):
        time.sleep(1 - time.time() % 1)
        links = [maker.link(REPO_TAG, name, head_uuid, project) for head_uuid in head_uuids]
        if len({whole_second(link["created_at"]) for link in links}) == 1:
            return links
        for link in links:
            maker.api.links().delete(uuid=link["uuid"]).execute()
    raise AssertionError(f"could not create {len(head_uuids)} links within one second in {SAME_SECOND_ATTEMPTS} attempts")


def whole_second(timestamp: str) -> str:
    return timestamp.split(".", 1)[0]


def test_portable_data_hash_by_default_and_newest_build_wins(lookup, images, connection):
    assert lookup.run([images.tiny], {}, **connection) == [images.new["portable_data_hash"]]


def test_one_value_per_term_in_order(lookup, images, connection):
    values = lookup.run([images.tiny, images.old["portable_data_hash"], images.tiny], {}, result="uuid", **connection)
    assert values == [images.new["uuid"], images.old["uuid"], images.new["uuid"]]


def test_nested_term_lists_are_flattened(lookup, images, connection):
    assert lookup.run([[images.tiny, images.tiny]], {}, result="uuid", **connection) == [images.new["uuid"]] * 2


def test_all_describes_the_choice_and_candidates(lookup, images, connection):
    [choice] = lookup.run([images.tiny], {}, result="all", **connection)
    assert choice["term"] == images.tiny
    assert choice["matched_by"] == REPO_TAG
    assert (choice["uuid"], choice["owner_uuid"]) == (images.new["uuid"], images.other_project)
    assert (choice["repo"], choice["tag"], choice["image_id"]) == (f"{images.prefix}/tiny", "1.0", f"sha256:{images.hex_new}")
    assert choice["image_timestamp"] == "2025-01-01T00:00:00.000000Z"
    assert choice["ambiguous"] is False and choice["migrated_from"] is None
    assert [candidate["uuid"] for candidate in choice["candidates"]] == [images.new["uuid"], images.old["uuid"]]


def test_project_restricts_the_candidates(lookup, images, connection):
    assert lookup.run([images.tiny], {}, result="uuid", project_uuid=images.project, **connection) == [images.old["uuid"]]


def test_image_id_terms_return_the_holder_and_warn(lookup, images, connection, warnings):
    terms = [f"sha256:{images.hex_old}", images.hex_old[:12]]
    assert lookup.run(terms, {}, result="uuid", **connection) == [images.old["uuid"]] * 2
    assert len(warnings) == 2
    assert "would run a different image" in warnings[0] and "newest image of any id" in warnings[0]
    assert "bare hex id" in warnings[1]


def test_missing_terms_fail_by_default_naming_the_term(lookup, images, connection):
    missing = f"{images.prefix}/tiny:2.0"
    with pytest.raises(AnsibleError, match=f"'{missing}': docker image \"{missing}\" not found"):
        lookup.run([images.tiny, missing], {}, **connection)


def test_missing_terms_warn_or_skip(lookup, images, connection, warnings):
    terms = [f"{images.prefix}/tiny:2.0", images.tiny]
    assert lookup.run(terms, {}, on_missing="warn", **connection) == [images.new["portable_data_hash"]]
    assert len(warnings) == 1 and terms[0] in warnings[0]
    assert lookup.run(terms, {}, on_missing="skip", **connection) == [images.new["portable_data_hash"]]
    assert len(warnings) == 1


def test_a_registry_port_without_tag_is_read_as_the_server_reads_it(lookup, images, connection):
    name = f"registry-{images.prefix}.example:5000/tiny"
    images.maker.link(REPO_TAG, f"{name}:latest", images.old["uuid"], images.project)
    assert lookup.run([f"{name}:latest"], {}, result="uuid", **connection) == [images.old["uuid"]]
    with pytest.raises(AnsibleError, match=f"first ':'.*write {name}:latest"):
        lookup.run([name], {}, **connection)


def test_ties_in_whole_seconds_warn(lookup, images, connection, warnings):
    other = images.maker.image(os.urandom(32).hex(), images.project)
    name = f"{images.prefix}/tie:1"
    links_in_one_second(images.maker, name, [images.old["uuid"], other["uuid"]], images.project)
    [choice] = lookup.run([name], {}, result="all", **connection)
    assert choice["ambiguous"] is True
    assert len(warnings) == 1 and "may run either" in warnings[0]


@pytest.mark.parametrize("term, message", [
    ("", "empty"),
    ("tiny 1.0", "whitespace"),
    ("sha256:xyz", "not an image id"),
    (42, "not a string"),
])
def test_bad_terms_fail_whatever_on_missing_says(lookup, connection, term, message):
    with pytest.raises(AnsibleError, match=f"bad term: .*{message}"):
        lookup.run([term], {}, on_missing="skip", **connection)


@pytest.mark.parametrize("option, value", [("result", "name"), ("on_missing", "ignore")])
def test_bad_option_values_are_refused(lookup, images, connection, option, value):
    with pytest.raises(AnsibleError, match=option):
        lookup.run([images.tiny], {}, **{option: value}, **connection)


def test_500_names_300_missing_cost_at_most_20_requests(lookup, connection, emulator):
    """Names without a repo+tag link fall back to hash links together, not one read each."""
    maker = ImageCollections(emulator.api("alice"))
    project = create_project(maker.api, "many missing")
    prefix = f"lookup-{os.urandom(4).hex()}"
    present = [f"{prefix}/img{n}:1" for n in range(200)]
    made = [maker.image(os.urandom(32).hex(), project, BUILT_2025, [name])["portable_data_hash"] for name in present]
    missing = [f"{letter}{prefix}/gone{n}:1" for letter in "abcdefghijklmnopqrstuvwxyz._-" for n in range(10)][:300]
    emulator.reset_request_log()
    assert lookup.run(present + missing, {}, on_missing="skip", **connection) == made
    assert len(api_requests(emulator)) <= 20, api_requests(emulator)


def test_no_terms_need_no_connection(lookup, connection, emulator):
    emulator.reset_request_log()
    assert lookup.run([], {}, **connection) == []
    assert lookup.run([[]], {}, **connection) == []
    assert api_requests(emulator) == []


def test_connection_options_come_from_variables(lookup, images, emulator, monkeypatch):
    for name in ("ARVADOS_API_HOST", "ARVADOS_API_TOKEN", "ARVADOS_API_HOST_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    variables = {"arvados_api_host": emulator.api_host, "arvados_api_token": emulator.token("alice"),
                 "arvados_api_insecure": True, "arvados_num_retries": 0}
    assert lookup.run([images.tiny], variables) == [images.new["portable_data_hash"]]
    with pytest.raises(AnsibleError, match="not trusted"):
        lookup.run([images.tiny], {**variables, "arvados_api_insecure": False})
    emulator.inject_fault("GET", "/arvados/v1/links", status=503)
    with pytest.raises(AnsibleError, match="answered 503"):
        lookup.run([images.tiny], variables)
    emulator.inject_fault("GET", "/arvados/v1/links", status=503)
    assert lookup.run([images.tiny], {**variables, "arvados_num_retries": 1}) == [images.new["portable_data_hash"]]
    unreachable = {**variables, "arvados_api_host": "arvados.invalid"}
    assert lookup.run([images.tiny], unreachable, api_host=emulator.api_host) == [images.new["portable_data_hash"]]
    with pytest.raises(AnsibleError, match="cannot resolve the API host name 'arvados.invalid'"):
        lookup.run([images.tiny], unreachable)


def test_connection_errors_name_the_terms_and_never_the_token(lookup, images, emulator):
    token = emulator.token("alice").rsplit("/", 1)[0] + "/" + "wrongsecret" * 4
    with pytest.raises(AnsibleError) as failure:
        lookup.run([images.tiny, "a:1", "b:1", "c:1"], {}, api_host=emulator.api_host, api_token=token, api_insecure=True)
    message = str(failure.value)
    assert "refused the token" in message
    assert f"'{images.tiny}', 'a:1', 'b:1' and 1 more" in message
    assert token not in message and token.rsplit("/", 1)[1] not in message


def test_a_missing_host_is_explained(lookup, emulator, monkeypatch, isolated_home):
    monkeypatch.delenv("ARVADOS_API_HOST", raising=False)
    with pytest.raises(AnsibleError, match="no Arvados API host: set api_host"):
        lookup.run(["tiny:1.0"], {}, api_token=emulator.token("alice"))
