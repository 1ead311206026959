"""Unit tests of the emulator's parts that need no server: ids, timestamps, signing, jsonb, filters, permissions."""
from __future__ import annotations

import json
import pathlib

import pytest

from emulator.arvemu import ids, jsonb, permissions, signing, timestamps
from emulator.arvemu.filters import FilterError, compile_filters, compile_order, order_sql, validate_select
from emulator.arvemu.params import load_params
from emulator.arvemu.permissions import Access, Edge, Grant
from emulator.arvemu.schema import COLLECTION
from emulator.arvemu.storage import Database

# The test vector of sdk/go/arvados/blob_signature_test.go.
KNOWN_HASH = "acbd18db4cc2f85cedef654fccc4a4d8"
KNOWN_TOKEN = "hocfupkn2pjhrpgp2vxv8rsku7tvtx49arbc9s4bvu7p7wxqvk"
KNOWN_KEY = (
    "13u9fkuccnboeewr0ne3mvapk28epf68a3bhj9q8sb4l6e4e5mkk"
    "p6nhj2mmpscgu1zze5h5enydxfe3j215024u16ij4hjaiqs5u4pzsl3nczmaoxnc"
    "ljkm4875xqn4xv058koz3vkptmzhyheiy6wzevzjmdvxhvcqsvr5abhl15c2d4o4"
    "jhl0s91lojy1mtrzqqvprqcverls0xvy9vai9t1l1lvvazpuadafm71jl4mrwq2y"
    "gokee3eamvjy8qq1fvy238838enjmy5wzy2md7yvsitp5vztft6j4q866efym7e6"
    "vu5wm9fpnwjyxfldw3vbo01mgjs75rgo7qioh8z8ij7jpyp8508okhgbbex3ceei"
    "786u5rw2a9gx743dj3fgq2irk")
KNOWN_SIGNATURE = "89118b78732c33104a4d6231e8b5a5fa1e4301e3"
KNOWN_TIMESTAMP = 0x7fffffff
KNOWN_SIGNED = f"{KNOWN_HASH}+3+A{KNOWN_SIGNATURE}@7fffffff"
KEY = signing.SigningKey(KNOWN_KEY.encode())


# ids and timestamps

def test_type_infixes_are_the_servers():
    assert ids.INFIX_BY_CLASS == {"User": "tpzed", "Group": "j7d0g", "Collection": "4zz18", "Link": "o0j2j",
                                  "ApiClientAuthorization": "gj3su", "KeepService": "bi6l4"}


def test_new_uuids_match_the_sdk_pattern():
    uuid = ids.new_uuid("zzzzz", "Collection")
    assert ids.UUID_RE.match(uuid) and uuid.startswith("zzzzz-4zz18-")
    assert ids.class_of(uuid) == "Collection"
    assert ids.class_of("acbd18db4cc2f85cedef654fccc4a4d8+3") == "Collection"
    assert ids.kind_of(ids.system_user_uuid("zzzzz")) == "arvados#user"


@pytest.mark.parametrize("given, normal", [
    ("2026-11-26T19:56:41.294780000Z", "2026-11-26T19:56:41.294780000Z"),
    ("2026-11-26T19:56:41Z", "2026-11-26T19:56:41.000000000Z"),
    ("2026-11-26T20:56:41+01:00", "2026-11-26T19:56:41.000000000Z"),
    ("2026-11-26", "2026-11-26T00:00:00.000000000Z"),
    ("2026-11-26T19:56:41.2947804Z", "2026-11-26T19:56:41.294780000Z"),
])
def test_timestamps_normalise_to_the_controller_format(given, normal):
    assert timestamps.normalize_timestamp(given) == normal


def test_timestamps_sort_as_strings_in_time_order():
    earlier = timestamps.normalize_timestamp("2026-01-01T00:00:00.5Z")
    later = timestamps.normalize_timestamp("2026-01-01T00:00:01Z")
    assert earlier < later


# signing

def test_portable_data_hash_fixture():
    assert signing.portable_data_hash(". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo\n") == "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"


def test_portable_data_hash_ignores_hints_and_spacing():
    signed = f". {KNOWN_SIGNED}+K@zzzzz  0:3:foo \n"
    assert signing.portable_data_hash(signed) == "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"


def test_signature_matches_the_arvados_test_vector():
    assert KEY.sign_locator(f"{KNOWN_HASH}+3", KNOWN_TOKEN, KNOWN_TIMESTAMP) == KNOWN_SIGNED
    assert KEY.ttl_hex == "127500"


def test_signature_message_layout():
    import hashlib
    import hmac
    message = f"{KNOWN_HASH}@{KNOWN_TOKEN}@7fffffff@127500".encode()
    assert hmac.new(KNOWN_KEY.encode(), message, hashlib.sha1).hexdigest() == KNOWN_SIGNATURE


@pytest.mark.parametrize("locator", [
    KNOWN_SIGNED,
    f"{KNOWN_HASH}+3+K@xyzzy+A{KNOWN_SIGNATURE}@7fffffff",
    f"{KNOWN_HASH}+3+A{KNOWN_SIGNATURE}@7fffffff+K@xyzzy",
])
def test_verify_accepts_hints_around_the_signature(locator):
    KEY.verify_locator(locator, KNOWN_TOKEN, now=1000)


@pytest.mark.parametrize("locator, token, now, reason", [
    (f"{KNOWN_HASH}+3", KNOWN_TOKEN, 1000, "missing"),
    (KNOWN_SIGNED, "some-other-token", 1000, "invalid"),
    (KNOWN_SIGNED.replace("89118", "99118"), KNOWN_TOKEN, 1000, "invalid"),
    (KNOWN_SIGNED, KNOWN_TOKEN, KNOWN_TIMESTAMP + 1, "expired"),
])
def test_verify_rejects(locator, token, now, reason):
    with pytest.raises(signing.SignatureError) as failure:
        KEY.verify_locator(locator, token, now=now)
    assert failure.value.reason == reason


def test_sign_manifest_replaces_old_signatures_and_strip_removes_them():
    manifest = f". {KNOWN_HASH}+3+Aold@00000001 0:3:foo\n"
    signed = KEY.sign_manifest(manifest, KNOWN_TOKEN, KNOWN_TIMESTAMP)
    assert signed == f". {KNOWN_SIGNED} 0:3:foo\n"
    assert signing.strip_signatures(signed) == f". {KNOWN_HASH}+3 0:3:foo\n"


def test_manifest_signature_check():
    KEY.check_manifest_signatures(f". {KNOWN_SIGNED} 0:3:foo\n", KNOWN_TOKEN, now=1000)
    KEY.check_manifest_signatures(f". {signing.EMPTY_BLOCK_HASH}+0 0:0:empty\n", KNOWN_TOKEN, now=1000)
    for manifest, token in ((f". {KNOWN_HASH}+3 0:3:foo\n", KNOWN_TOKEN), (f". {KNOWN_SIGNED} 0:3:foo\n", "another")):
        with pytest.raises(signing.SignatureError):
            KEY.check_manifest_signatures(manifest, token, now=1000)


@pytest.mark.parametrize("manifest, message", [
    (". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo", "does not end with newline"),
    ("foo acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo\n", "missing or invalid stream name"),
    (". 0:3:foo\n", "missing or invalid locator"),
    (". acbd18db4cc2f85cedef654fccc4a4d8+3\n", "no file tokens"),
    (". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:../x\n", "invalid file token"),
])
def test_manifest_validation(manifest, message):
    with pytest.raises(signing.ManifestError, match=message):
        signing.validate_manifest(manifest)


def test_file_stats_count_files_not_segments():
    manifest = (f". {KNOWN_HASH}+3 0:1:a 1:2:a 0:3:b\\040c 0:0:.\n"
                f"./sub {KNOWN_HASH}+3 0:3:d/e\n")
    assert signing.file_stats(manifest) == (3, 9)


# jsonb and LIKE

@pytest.mark.parametrize("container, probe, expected", [
    ({"a": 1, "b": [1, 2]}, {"a": 1}, True),
    ({"a": [1, 2]}, {"a": [2]}, True),
    ({"a": [1, 2]}, {"a": 2}, False),
    (["x", "y"], "x", True),
    ({"a": True}, {"a": 1}, False),
    ({"a": 1}, {"a": 1.0}, True),
])
def test_jsonb_containment(container, probe, expected):
    assert jsonb.contains(container, probe) is expected


@pytest.mark.parametrize("value, pattern, insensitive, expected", [
    ("sha256:abc", "sha256:a%", False, True),
    ("SHA256:abc", "sha256:a%", False, False),
    ("SHA256:abc", "sha256:a%", True, True),
    ("a_b", "a\\_b", False, True),
    ("axb", "a\\_b", False, False),
    ("axb", "a_b", False, True),
    ("50%", "50\\%", False, True),
])
def test_like(value, pattern, insensitive, expected):
    assert jsonb.like(value, pattern, insensitive) is expected


# filters, run through SQLite as the server runs them through PostgreSQL

@pytest.fixture()
def table(tmp_path: pathlib.Path) -> Database:
    db = Database(tmp_path / "filters.sqlite3")
    rows = [
        ("zzzzz-4zz18-000000000000001", "alpha", {"tag": "x", "n": 1, "list": ["a", "b"]}, "2026-01-01T00:00:00.000001000Z", 3),
        ("zzzzz-4zz18-000000000000002", "Alpha_2", {"tag": "y", "n": 5}, "2026-01-01T00:00:00.000002000Z", 0),
        ("zzzzz-4zz18-000000000000003", None, {}, "2026-01-02T00:00:00.000000000Z", None),
    ]
    for uuid, name, properties, created_at, file_count in rows:
        db.insert(COLLECTION, {"uuid": uuid, "owner_uuid": "zzzzz-tpzed-000000000000000", "name": name,
                               "properties": properties, "created_at": created_at, "modified_at": created_at,
                               "file_count": file_count, "is_trashed": False, "manifest_text": ""})
    return db


def matching(db: Database, filters: list) -> list[str]:
    condition = compile_filters(filters, COLLECTION.shape)
    return sorted(row["uuid"][-1] for row in db.select(COLLECTION, condition))


@pytest.mark.parametrize("filters, expected", [
    ([["name", "=", "alpha"]], ["1"]),
    ([["name", "!=", "alpha"]], ["2", "3"]),
    ([["name", "=", None]], ["3"]),
    ([["name", "!=", None]], ["1", "2"]),
    ([["name", "like", "alpha%"]], ["1"]),
    ([["name", "ilike", "alpha%"]], ["1", "2"]),
    ([["name", "ilike", "alpha\\_%"]], ["2"]),
    ([["file_count", ">", 0]], ["1"]),
    ([["file_count", "<=", 3]], ["1", "2"]),
    ([["created_at", ">=", "2026-01-01T00:00:00.000002000Z"]], ["2", "3"]),
    ([["created_at", "=", "2026-01-01T00:00:00.000002Z"]], ["2"]),
    ([["created_at", "<", "2026-01-02"]], ["1", "2"]),
    ([["uuid", "in", ["zzzzz-4zz18-000000000000001", "zzzzz-4zz18-000000000000003"]]], ["1", "3"]),
    ([["uuid", "in", []]], []),
    ([["name", "not in", ["alpha"]]], ["2", "3"]),
    ([["uuid", "is_a", "arvados#collection"]], ["1", "2", "3"]),
    ([["uuid", "is_a", "arvados#link"]], []),
    ([["owner_uuid", "is_a", "arvados#user"]], ["1", "2", "3"]),
    ([[["name", "uuid"], "ilike", "%003"]], ["3"]),
    ([["properties", "exists", "tag"]], ["1", "2"]),
    ([["properties.tag", "=", "x"]], ["1"]),
    ([["properties.tag", "!=", "x"]], ["2", "3"]),
    ([["properties.tag", "exists", True]], ["1", "2"]),
    ([["properties.tag", "exists", False]], ["3"]),
    ([["properties.tag", "in", ["x", "y"]]], ["1", "2"]),
    ([["properties.n", ">", 2]], ["2"]),
    ([["properties.tag", "like", "%"]], ["1", "2"]),
    ([["properties.list", "contains", "b"]], ["1"]),
    ([["properties.<tag>", "=", "y"]], ["2"]),
    ([["properties", "contains", ["tag", "n"]]], ["1", "2"]),
    ([["name", "ilike", "a%"], ["file_count", "=", 0]], ["2"]),
])
def test_filter_semantics(table, filters, expected):
    assert matching(table, filters) == expected


@pytest.mark.parametrize("filters, message", [
    ([["bogus", "=", 1]], "Invalid attribute 'bogus' in filter"),
    ([["manifest_text", "=", ""]], "Invalid attribute 'manifest_text' in filter"),
    ([["name", "bogus", "x"]], "Invalid operator 'bogus'"),
    ([["created_at", "like", "2026%"]], "Invalid attribute 'created_at' in filter"),
    ([["uuid", "in", "x"]], "Invalid operand type 'String' for 'in' operator in filters"),
    ([["file_count", "=", "x"]], 'invalid input syntax for type bigint: "x"'),
    ([["file_count", "=", 1.5]], "Invalid operand '1.5' for integer attribute 'file_count'"),
    ([["name", "=", 1]], "Invalid operand type 'Integer' for '=' operator in filters"),
    ([["name.x", "=", 1]], "Invalid attribute 'name' for subproperty filter"),
    ([["properties.x", "bogus", 1]], "Invalid operator for subproperty search 'bogus'"),
    ([["name", "contains", "x"]], "Invalid attribute 'name' for 'contains' operator"),
    ([["name", 1, "x"]], "Invalid operator '1' (Integer) in filter"),
    (["name"], 'Invalid element in filters array: "name" is not an array'),
    ([["created_at", ">", "not a time"]], "no time information"),
])
def test_filter_errors_carry_the_servers_messages(filters, message):
    with pytest.raises(FilterError) as failure:
        compile_filters(filters, COLLECTION.shape)
    assert message in str(failure.value)


def test_order_appends_tie_breakers_and_honours_nulls(table):
    orders = compile_order(["name asc"], COLLECTION.shape)
    assert orders == [("name", "asc"), ("modified_at", "desc"), ("uuid", "desc")]
    names = [row["name"] for row in table.select(COLLECTION, compile_filters([], COLLECTION.shape), order_sql(orders))]
    assert names == ["Alpha_2", "alpha", None]
    descending = compile_order("name desc", COLLECTION.shape)
    names = [row["name"] for row in table.select(COLLECTION, compile_filters([], COLLECTION.shape), order_sql(descending))]
    assert names == [None, "alpha", "Alpha_2"]


def test_order_ignores_unknown_columns_and_drops_unselected_ones():
    assert compile_order(["bogus desc", "collections.name desc"], COLLECTION.shape)[0] == ("name", "desc")
    assert compile_order(["created_at asc", "uuid asc"], COLLECTION.shape, ["uuid", "created_at"]) == [
        ("created_at", "asc"), ("uuid", "asc")]
    assert compile_order(["name asc"], COLLECTION.shape, ["uuid"]) == [("uuid", "desc")]


def test_select_validation():
    assert validate_select(["uuid", "collections.name"], COLLECTION.selectable, COLLECTION.shape) == ["uuid", "name"]
    assert validate_select(json.dumps(["kind"]), COLLECTION.selectable, COLLECTION.shape) == ["kind"]
    with pytest.raises(FilterError, match="Invalid attribute 'bogus' of Collection in select parameter"):
        validate_select(["bogus"], COLLECTION.selectable, COLLECTION.shape)


def test_params_follow_the_controllers_type_guessing():
    params = load_params([("limit", "5"), ("include_trash", "true"), ("filters", '[["a","=","b"]]'), ("order", "name desc,uuid")],
                         {"name": "x", "properties": {"k": "v"}}, "collection")
    assert params["limit"] == 5 and params["include_trash"] is True
    assert params["filters"] == [["a", "=", "b"]]
    assert params["order"] == ["name desc", "uuid"]
    assert params["attrs"] == {"name": "x", "properties": {"k": "v"}}
    wrapped = load_params([], {"collection": {"name": "y"}, "ensure_unique_name": True}, "collection")
    assert wrapped["attrs"] == {"name": "y"} and wrapped["ensure_unique_name"] is True


# permissions

ALICE = "zzzzz-tpzed-aaaaaaaaaaaaaaa"
BOB = "zzzzz-tpzed-bbbbbbbbbbbbbbb"
SYSTEM = "zzzzz-tpzed-000000000000000"
ALL_USERS = "zzzzz-j7d0g-fffffffffffffff"
PROJECT = "zzzzz-j7d0g-aaaaaaaaaaaaaa1"
SUBPROJECT = "zzzzz-j7d0g-aaaaaaaaaaaaaa2"
ROLE = "zzzzz-j7d0g-rrrrrrrrrrrrrrr"


def base_edges() -> list[Edge]:
    return [
        Edge(SYSTEM, ALICE, 3), Edge(SYSTEM, BOB, 3), Edge(ALICE, ALICE, 3), Edge(BOB, BOB, 3),
        Edge(SYSTEM, ALL_USERS, 3), Edge(ALICE, ALL_USERS, 2), Edge(BOB, ALL_USERS, 2),
        Edge(ALL_USERS, ALICE, 1), Edge(ALL_USERS, BOB, 1),
        Edge(ALICE, PROJECT, 3), Edge(PROJECT, SUBPROJECT, 3),
    ]


def test_owner_holds_everything_below_their_home():
    grants = permissions.compute_grants(ALICE, base_edges())
    assert grants[PROJECT] == Grant(3, True) and grants[SUBPROJECT] == Grant(3, True)


def test_other_users_are_visible_but_not_their_things():
    grants = permissions.compute_grants(BOB, base_edges())
    assert grants[ALICE] == Grant(1, False)
    assert PROJECT not in grants
    access = Access(BOB, False, grants, frozenset())
    assert access.can("read", ALICE) and not access.can("read", "zzzzz-4zz18-xxxxxxxxxxxxxxx", PROJECT)


def test_can_read_on_a_project_reaches_its_subprojects_at_read_level():
    grants = permissions.compute_grants(BOB, base_edges() + [Edge(BOB, PROJECT, 1)])
    assert grants[PROJECT] == Grant(1, True) and grants[SUBPROJECT] == Grant(1, True)
    access = Access(BOB, False, grants, frozenset())
    assert access.can("read", "zzzzz-4zz18-xxxxxxxxxxxxxxx", SUBPROJECT)
    assert not access.can("write", "zzzzz-4zz18-xxxxxxxxxxxxxxx", SUBPROJECT)


def test_role_membership_passes_the_weaker_level_on():
    edges = base_edges() + [Edge(BOB, ROLE, 1), Edge(ROLE, PROJECT, 2)]
    assert permissions.compute_grants(BOB, edges)[PROJECT].level == 1
    edges = base_edges() + [Edge(BOB, ROLE, 3), Edge(ROLE, PROJECT, 2)]
    assert permissions.compute_grants(BOB, edges)[PROJECT].level == 2


def test_can_manage_on_a_user_reaches_what_they_own():
    grants = permissions.merged_grants(BOB, base_edges() + [Edge(BOB, ALICE, 3)])
    assert grants[ALICE] == Grant(3, True) and grants[PROJECT].level == 3
    assert PROJECT not in permissions.merged_grants(BOB, base_edges() + [Edge(BOB, ALICE, 1)])


def test_trash_covers_everything_inside_a_trashed_project():
    groups = [(PROJECT, ALICE, "2026-01-01T00:00:00.000000000Z"), (SUBPROJECT, PROJECT, None),
              ("zzzzz-j7d0g-aaaaaaaaaaaaaa3", ALICE, "2999-01-01T00:00:00.000000000Z")]
    assert permissions.trashed_groups(groups, "2026-06-01T00:00:00.000000000Z") == frozenset({PROJECT, SUBPROJECT})


def test_admin_can_do_anything():
    access = Access(ALICE, True, {}, frozenset())
    assert access.can("manage", "zzzzz-4zz18-xxxxxxxxxxxxxxx", BOB)


def test_long_in_lists_work_past_sqlites_variable_limit(table):
    wanted = [f"zzzzz-4zz18-{number:015d}" for number in range(1, 40001)]
    assert matching(table, [["uuid", "in", wanted]]) == ["1", "2", "3"]
    assert matching(table, [["uuid", "not in", wanted]]) == []
    assert matching(table, [["name", "not in", [f"x{number}" for number in range(200)]]]) == ["1", "2", "3"]
