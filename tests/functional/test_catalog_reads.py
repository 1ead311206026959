"""CatalogReader against the emulator: batched reads give what reading everything gives, at a bounded request cost.

The reader is the collection's own ArvadosClient talking HTTPS to the emulator; the emulator's request log counts
what it asks for. Images are registered cheaply through the API (helpers.ImageCollections).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import os
import random
import types
import typing as t

import arvados.util
import pytest

from helpers import ImageCollections, importable_collection, v1_image_file, v2_image_file
from upstream import create_project

HASH = "docker_image_hash"
REPO_TAG = "docker_image_repo+tag"
MIGRATION = "docker_image_migration"
LINK_FIELDS = ["uuid", "link_class", "name", "head_uuid", "tail_uuid", "owner_uuid", "created_at", "properties"]
COLLECTION_FIELDS = ["uuid", "portable_data_hash", "owner_uuid", "name", "manifest_text", "properties", "is_trashed", "created_at"]
READERS = ("alice", "admin")
FORMAT_SETS = [("v2",), ("v1", "v2"), ("v1",)]
SEEDS = range(4)
# Each seed is read by one user: alice reads neither bob's images nor the system user's migration links, admin reads all.
SEED_READERS = [(seed, READERS[seed % len(READERS)]) for seed in SEEDS]
IMAGES_PER_SEED = 24
# Shapes of a random image: mostly v2, some v1, some with a second file (no format accepts those).
SHAPES = ("v2", "v2", "v2", "v1", "two")
BUILT_2024 = "2024-01-01T00:00:00Z"
BUILT_2025 = "2025-01-01T00:00:00Z"


@dataclasses.dataclass(frozen=True)
class Code:
    """The collection's module utils, imported from a staged copy of this checkout."""

    reader: types.ModuleType
    choice: types.ModuleType
    view: types.ModuleType
    records: types.ModuleType
    arvados_client: types.ModuleType


@dataclasses.dataclass(frozen=True)
class RandomImage:
    collection: dict[str, t.Any]
    hex_digits: str
    shape: str


@dataclasses.dataclass(frozen=True)
class RandomCatalog:
    """One seed's images, in two projects of alice's (the first is the one restricted to), bob's home and admin's."""

    project_uuid: str
    terms: list[str]


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> t.Iterator[Code]:
    with importable_collection(tmp_path_factory.mktemp("staged")):
        module_utils = "ansible_collections.arvados.cluster.plugins.module_utils."
        yield Code(*(importlib.import_module(module_utils + name)
                     for name in ("_catalog_reader", "_server_choice", "_cluster_view", "_records", "_arvados")))


@pytest.fixture(scope="module")
def clients(code, emulator) -> dict[str, t.Any]:
    """The collection's ArvadosClient for each reading user."""
    return {user: code.arvados_client.ArvadosClient(code.arvados_client.ConnectionOptions(
        api_host=emulator.api_host, api_token=emulator.token(user), api_insecure=True)) for user in READERS}


@pytest.fixture(scope="module")
def makers(emulator) -> dict[str, ImageCollections]:
    return {user: ImageCollections(emulator.api(user)) for user in ("alice", "bob", "admin")}


@pytest.fixture(scope="module")
def random_catalog(emulator, makers) -> t.Callable[[int], RandomCatalog]:
    """Builds each seed's catalog once, on first use."""
    built: dict[int, RandomCatalog] = {}

    def catalog_for(seed: int) -> RandomCatalog:
        if seed not in built:
            built[seed] = build_random_catalog(random.Random(seed), makers, emulator.system_user_uuid)
        return built[seed]
    return catalog_for


def unique_prefix(word: str) -> str:
    return f"{word}-{os.urandom(4).hex()}"


def random_hex(rng: random.Random) -> str:
    return f"{rng.randrange(16 ** 64):064x}"


def build_random_catalog(rng: random.Random, makers: dict[str, ImageCollections], system_user_uuid: str) -> RandomCatalog:
    """Images under a few names, some of them bob's (alice cannot read them), trashed, v1, two-file or migrated."""
    projects = [create_project(makers["alice"].api, "catalog reads") for _index in range(2)]
    prefix = unique_prefix("reads")
    names = [f"{prefix}/repo{n}:{tag}" for n in range(4) for tag in ("1", "latest")]
    images = [make_random_image(rng, makers, projects, names) for _index in range(IMAGES_PER_SEED)]
    hide_a_newer_build(makers["admin"], projects[0], names[0])
    for image in images:
        if image.shape != "v2" and rng.random() < 0.5:
            target = rng.choice(images).collection
            owner_uuid = rng.choice([system_user_uuid, projects[0]])
            makers["admin"].link(MIGRATION, "migrate", target["portable_data_hash"], owner_uuid,
                                 tail_uuid=image.collection["portable_data_hash"])
    terms = names + ["sha256", f"{prefix}/repo9:1", f"{prefix}/repo1", f"{prefix}/repo2:1:extra", f"{prefix}.example:5000/repo1"]
    for image in rng.sample(images, 5):
        hex_digits = image.hex_digits
        terms += [f"sha256:{hex_digits}", f"sha256:{hex_digits[:6]}", hex_digits[:14], hex_digits[:10],
                  image.collection["portable_data_hash"]]
    return RandomCatalog(projects[0], terms)


def make_random_image(rng: random.Random, makers: dict[str, ImageCollections], projects: list[str], names: list[str]) -> RandomImage:
    hex_digits = random_hex(rng)
    shape = rng.choice(SHAPES)
    files = {"v2": (v2_image_file(hex_digits),), "v1": (v1_image_file(hex_digits),), "two": (v2_image_file(hex_digits), "README")}
    bobs = rng.random() < 0.1
    maker = makers["bob"] if bobs else makers["alice"]
    owner_uuid = None if bobs else rng.choice(projects)
    collection = maker.collection(*files[shape], owner_uuid=owner_uuid)
    timestamp = None if rng.random() < 0.2 else f"20{rng.randrange(10, 26)}-01-01T00:00:00Z"
    hash_name = hex_digits if shape == "v1" else f"sha256:{hex_digits}"
    maker.link(HASH, hash_name, collection["uuid"], owner_uuid, timestamp)
    for name in rng.sample(names, rng.randrange(0, 3)):
        maker.link(REPO_TAG, name, collection["uuid"], owner_uuid, timestamp)
    if rng.random() < 0.1:
        maker.api.collections().delete(uuid=collection["uuid"]).execute()
    return RandomImage(collection, hex_digits, shape)


def hide_a_newer_build(admin: ImageCollections, project_uuid: str, name: str) -> None:
    """A link in alice's project to an admin's collection: alice reads the link, not the image it points at."""
    collection = admin.collection(v2_image_file(os.urandom(32).hex()))
    admin.link(REPO_TAG, name, collection["uuid"], project_uuid, "2030-01-01T00:00:00Z")


def list_all(list_method: t.Callable[..., t.Any], filters: list[t.Any], select: list[str]) -> list[dict[str, t.Any]]:
    return list(arvados.util.keyset_list_all(list_method, filters=filters, select=select))


def with_formats(client: t.Any, formats: t.Sequence[str]) -> t.Any:
    """The client as though the cluster's discovery document listed `formats` as its dockerImageFormats."""
    configured = copy.copy(client)
    configured._discovery = dict(client.discovery, dockerImageFormats=list(formats))  # pylint: disable=protected-access
    return configured


def choices_of(code: Code, client: t.Any, terms: list[t.Any], formats: t.Sequence[str],
               project_uuid: str | None = None, listed_first: bool = False) -> dict[str, t.Any]:
    """Each term's choice, from one batched read (as the lookup reads) and the one rule; with `listed_first`, from a
    reader that first ran the upstream listing (of the project, when given), as the info module reads."""
    reader = code.reader.CatalogReader(with_formats(client, formats))
    if listed_first:
        reader.upstream_listing(project_uuid=project_uuid)
    view = reader.read_view(terms, project_uuid)
    return {term.text: code.choice.server_choice(view, term) for term in terms}


def name_choices(code: Code, client: t.Any, names: list[str], formats: t.Sequence[str], project_uuid: str | None = None) -> dict[str, t.Any]:
    return choices_of(code, client, [code.choice.server_term(name) for name in names], formats, project_uuid)


def everything_readable(api: t.Any, catalog: types.ModuleType, project_uuid: str | None) -> tuple[list[t.Any], list[t.Any], list[t.Any]]:
    """Every image link and collection the user reads (those the project owns, when given), and every migration link."""
    owned = [["owner_uuid", "=", project_uuid]] if project_uuid else []
    links = list_all(api.links().list, [["link_class", "in", [HASH, REPO_TAG]]] + owned, LINK_FIELDS)
    collections = list_all(api.collections().list, owned, COLLECTION_FIELDS)
    migrations = list_all(api.links().list, [["link_class", "=", MIGRATION]], LINK_FIELDS)
    return ([catalog.ImageLink.from_api(row) for row in links], [catalog.ImageCollection.from_api(row) for row in collections],
            [catalog.MigrationLink.from_api(row) for row in migrations])


def one_term_at_a_time(code: Code, client: t.Any, terms: list[t.Any], formats: list[str],
                       project_uuid: str | None) -> dict[str, t.Any]:
    """Each term's choice read by a reader of its own."""
    return {term.text: choices_of(code, client, [term], formats, project_uuid)[term.text] for term in terms}


def resources_read(emulator: t.Any) -> list[str]:
    """The API requests since the log was reset: the resource name of each list, anything else in full."""
    requests = [entry for entry in emulator.request_log()["entries"] if entry["service"] == "api"]
    return [
        entry["path"][len("/arvados/v1/"):] if entry["method"] == "GET" and entry["path"].startswith("/arvados/v1/")
        else f"{entry['method']} {entry['path']}"
        for entry in requests
    ]


# Batched reads against random catalogs

@pytest.mark.parametrize("seed, user", SEED_READERS)
@pytest.mark.parametrize("formats", FORMAT_SETS, ids="+".join)
@pytest.mark.parametrize("in_project", [False, True], ids=["anywhere", "in_project"])
@pytest.mark.parametrize("listed_first", [False, True], ids=["view", "listing_then_view"])
def test_batched_reads_give_what_reading_everything_gives(seed, user, formats, in_project, listed_first, random_catalog, code,
                                                          clients, emulator):
    """Also in the info module's order of reads: the upstream listing first, whose rows then serve the view's reads."""
    catalog = random_catalog(seed)
    project_uuid = catalog.project_uuid if in_project else None
    system_user = emulator.system_user_uuid
    terms = [code.choice.parse_term(text) for text in catalog.terms]
    batched = choices_of(code, clients[user], terms, formats, project_uuid, listed_first=listed_first)
    alone = one_term_at_a_time(code, clients[user], terms, list(formats), project_uuid)
    links, collections, migrations = everything_readable(emulator.api(user), code.records, project_uuid)
    # Only admins read the system user's migration links, which the server may follow.
    everything = code.view.ClusterView(tuple(links), tuple(collections), tuple(formats), tuple(migrations), system_user,
                                       hidden_migrations=user != "admin")
    for term in terms:
        expected = code.choice.server_choice(everything, term)
        assert batched[term.text] == expected, term.text
        assert alone[term.text] == expected, term.text


def test_random_catalogs_hold_every_kind_of_choice(random_catalog, code, clients, emulator):
    """The catalogs above are worth comparing: their terms match by name, hash link and content, some are
    migrated, some refused for their format, some not found, and alice reads less than admin."""
    seen: dict[str, set[str]] = {user: set() for user in READERS}
    for seed in SEEDS:
        catalog = random_catalog(seed)
        terms = [code.choice.parse_term(text) for text in catalog.terms]
        for user in READERS:
            choices = choices_of(code, clients[user], terms, ["v2"])
            seen[user].update(choice_kinds(choices.values(), code.choice))
    assert seen["admin"] >= {HASH, REPO_TAG, "portable_data_hash", "migrated", "incompatible", "not found"}
    assert seen["alice"] >= {HASH, REPO_TAG, "portable_data_hash", "incompatible", "not found"}
    assert "migrated" not in seen["alice"]


def choice_kinds(choices: t.Iterable[t.Any], catalog: types.ModuleType) -> set[str]:
    """How each choice came out: the link class or portable data hash that matched, migrated, incompatible or not found."""
    kinds: set[str] = set()
    for choice in choices:
        if choice.winner is None:
            kinds.add("incompatible" if choice.error == catalog.INCOMPATIBLE_ERROR else "not found")
            continue
        kinds.add(choice.matched_by)
        if choice.winner.migrated_from is not None:
            kinds.add("migrated")
    return kinds


# Request counts and single behaviours

def test_many_names_cost_a_bounded_number_of_requests(makers, code, clients, emulator):
    alice = makers["alice"]
    project_uuid = create_project(alice.api, "many names")
    prefix = unique_prefix("many")
    names = [f"{prefix}/img{n}:1" for n in range(50)]
    made = {name: alice.image(os.urandom(32).hex(), project_uuid, BUILT_2025, [name])["uuid"] for name in names}
    emulator.reset_request_log()
    choices = name_choices(code, clients["alice"], names, ["v2"])
    assert {name: choice.winner.collection.uuid for name, choice in choices.items()} == made
    # The links of every name at once; the 50 collections they point at, in one page.
    assert resources_read(emulator) == ["links", "collections"]

    # After listing every image the token reads, the listing's own rows answer for every name.
    reader = code.reader.CatalogReader(clients["alice"])
    listed = reader.upstream_listing()
    assert {uuid for uuid, _info in listed} >= set(made.values())
    emulator.reset_request_log()
    view = reader.read_view([code.choice.server_term(name) for name in names])
    assert {name: code.choice.server_choice(view, code.choice.server_term(name)).winner.collection.uuid for name in names} == made
    assert resources_read(emulator) == []


def test_many_missing_names_read_hash_links_in_a_fixed_number_of_requests(makers, code, clients, emulator):
    """500 names, 300 without a repo+tag link: the server's hash link fallback for all of them in a few reads, with
    LIKE's wildcards (`_` in a name matches the `:` of `sha256:`) and case as the server has them."""
    alice = makers["alice"]
    project_uuid = create_project(alice.api, "many missing")
    prefix = unique_prefix("missing")
    present = [f"{prefix}/img{n}:1" for n in range(200)]
    hexes = [os.urandom(32).hex() for _name in present]
    made = {name: alice.image(hex_digits, project_uuid, BUILT_2025, [name])["uuid"] for name, hex_digits in zip(present, hexes)}
    by_wildcard = {f"sha256_{hex_digits[:8]}:w": made[name] for name, hex_digits in zip(present[:10], hexes)}
    missing = [f"{prefix}/gone{n}:1" for n in range(263)] + [f"{letter}{prefix}/x:1" for letter in "bcdeghijklmnopqrtuvwxyz"]
    missing += list(by_wildcard) + [f"SHA256_{hexes[10][:8]}:w", f"sha256_{hexes[11][:8].upper()}:w"]
    missing += [f"sha256_{hexes[12][:4]}%{hexes[12][6:10]}:w", f"{prefix}/img1_:1"]
    assert (len(present), len(missing)) == (200, 300)
    emulator.reset_request_log()
    choices = name_choices(code, clients["alice"], present + missing, ["v2"])
    requests = resources_read(emulator)
    links, collections, migrations = everything_readable(emulator.api("alice"), code.records, None)
    everything = code.view.ClusterView(tuple(links), tuple(collections), ("v2",), tuple(migrations), emulator.system_user_uuid,
                                       hidden_migrations=True)
    for name in present + missing:
        assert choices[name] == code.choice.server_choice(everything, code.choice.server_term(name)), name
    assert {name: choices[name].winner.collection.uuid for name in by_wildcard} == by_wildcard
    assert choices[f"sha256_{hexes[12][:4]}%{hexes[12][6:10]}:w"].winner.collection.uuid == made[present[12]]
    assert choices[f"SHA256_{hexes[10][:8]}:w"].winner is None
    assert choices[f"{prefix}/img1_:1"].matched_by is None
    # Links of every name; their collections; at most HASH_LINK_READS reads of hash links (a page each here: 25 first
    # letters share no prefix, so one read of every hash link); the collections found so were read already.
    assert requests == ["links", "collections", "links"]
    assert code.reader.HASH_LINK_READS <= 10


def test_pdh_terms_full_ids_and_prefixes_add_few_requests(makers, code, clients, emulator):
    alice = makers["alice"]
    project_uuid = create_project(alice.api, "few requests")
    name = f"{unique_prefix('few')}/tiny:1.0"
    hex_digits = os.urandom(32).hex()
    collection = alice.image(hex_digits, project_uuid, repo_tags=[name])
    texts = (name, f"sha256:{hex_digits}", collection["portable_data_hash"], f"sha256:{hex_digits[:8]}")
    terms = [code.choice.parse_term(text) for text in texts]
    emulator.reset_request_log()
    choices = choices_of(code, clients["alice"], terms, ["v2"])
    assert {text: choice.winner.collection.uuid for text, choice in choices.items()} == dict.fromkeys(texts, collection["uuid"])
    assert choices[collection["portable_data_hash"]].matched_by == code.choice.MATCHED_BY_PORTABLE_DATA_HASH
    # Names and full ids together; their collections; the two forms of the prefix; the portable data hash.
    assert resources_read(emulator) == ["links", "collections", "links", "links", "collections"]


def test_migration_links_are_read_only_for_unsupported_formats(makers, code, clients, emulator):
    alice = makers["alice"]
    project_uuid = create_project(alice.api, "migration reads")
    name = f"{unique_prefix('old')}/old:1"
    v1 = alice.collection(v1_image_file(os.urandom(32).hex()), owner_uuid=project_uuid)
    alice.link(REPO_TAG, name, v1["uuid"], project_uuid)
    emulator.reset_request_log()
    assert name_choices(code, clients["alice"], [name], ["v1"])[name].winner.collection.uuid == v1["uuid"]
    assert resources_read(emulator) == ["links", "collections"]
    emulator.reset_request_log()
    refused = name_choices(code, clients["alice"], [name], ["v2"])[name]
    assert refused.error == code.choice.INCOMPATIBLE_ERROR
    # The same reads, then the migration links away from the image the cluster cannot run, and whether the token is
    # an admin's (no migration link was readable: only admins can read them).
    assert resources_read(emulator) == ["links", "collections", "links", "users/current"]
    assert refused.hidden_migration


def test_a_better_placed_image_of_an_unsupported_format_is_migrated_not_skipped(makers, code, clients, emulator):
    alice, admin = makers["alice"], makers["admin"]
    project_uuid, other_project_uuid = (create_project(alice.api, "migrated") for _index in range(2))
    name = f"{unique_prefix('img')}/img:1"
    hex_digits = os.urandom(32).hex()
    v1 = alice.collection(v1_image_file(hex_digits), owner_uuid=project_uuid)
    v2_older = alice.collection(v2_image_file(os.urandom(32).hex()), owner_uuid=project_uuid)
    target = alice.collection(v2_image_file(hex_digits), owner_uuid=other_project_uuid)
    alice.link(REPO_TAG, name, v1["uuid"], project_uuid, BUILT_2025)
    alice.link(REPO_TAG, name, v2_older["uuid"], project_uuid, BUILT_2024)
    admin.link(MIGRATION, "migrate", target["portable_data_hash"], emulator.system_user_uuid, tail_uuid=v1["portable_data_hash"])
    winner = name_choices(code, clients["admin"], [name], ["v2"])[name].winner
    assert (winner.collection.uuid, winner.migrated_from.uuid) == (target["uuid"], v1["uuid"])
    # alice cannot read the system user's migration link, so for her token the v1 image is skipped, with a warning.
    for_alice = name_choices(code, clients["alice"], [name], ["v2"])[name]
    assert (for_alice.winner.collection.uuid, for_alice.hidden_migration) == (v2_older["uuid"], True)


def test_project_restricts_links_and_collections(makers, code, clients):
    alice = makers["alice"]
    project_uuid, other_project_uuid = (create_project(alice.api, "restricted") for _index in range(2))
    name = f"{unique_prefix('img')}/img:1"
    mine = alice.image(os.urandom(32).hex(), project_uuid, BUILT_2024, [name])
    theirs = alice.image(os.urandom(32).hex(), other_project_uuid, BUILT_2025, [name])
    assert name_choices(code, clients["alice"], [name], ["v2"])[name].winner.collection.uuid == theirs["uuid"]
    in_project = name_choices(code, clients["alice"], [name, theirs["portable_data_hash"]], ["v2"], project_uuid=project_uuid)
    assert in_project[name].winner.collection.uuid == mine["uuid"]
    assert in_project[theirs["portable_data_hash"]].winner is None
