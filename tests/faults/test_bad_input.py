"""Bad input to the module, the lookup, the info module and the role: each case is a clear error that names the
field and the fix, and creates nothing.

Every case runs for both ways of giving the token, as a task of its own; cases that share an environment share a
playbook. The whole table runs twice: with the module's code in the controller, and shipped as a module. All runs
go between two snapshots of every object in the cluster (collections and groups with trashed ones, links): since no
case may create anything, the two must be equal. The format case changes a server setting, so it runs after the
others.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import pathlib
import typing as t

import pytest

from cluster import ClusterView
from hosts import DELIVERIES, assert_no_secret, connection, new_project
from harness.emulator import Emulator
from playbooks import EXECUTIONS, AnsibleRunner, PlaybookRun, module_task

PARALLEL_RUNS = 4
EXPIRED = "2000-01-01T00:00:00Z"


@dataclasses.dataclass(frozen=True)
class BadInput:
    """One row of the table. Values in `args` may name fixtures as {placeholders}.

    `token` is "distinctive" (the suite's token), "expired", "invalid", "other_cluster" or "missing"; `api_host` "emulator" or "keep"
    (a server that is not the API); `insecure` False checks the emulator's self-signed certificate.
    """

    case: str
    args: t.Mapping[str, t.Any]
    expected: tuple[str, ...]
    token: str = "distinctive"
    api_host: str = "emulator"
    insecure: bool = True
    alone: bool = False
    kind: str = "module"
    unexpected: tuple[str, ...] = ()


# An item the role would upload, were no other item bad.
ROLE_GOOD_ITEM = {"name": "{image}", "source": "archive", "archive_path": "{archive}"}

CASES = (
    BadInput("uppercase repository", {"name": "Faults/Bad:1.0"}, ("name:", "must be lowercase", "use 'faults/bad'")),
    BadInput("tag in name and tag disagree", {"name": "faults/bad:1.0", "tag": "2.0"}, ("tag", "give the tag in only one of name and tag")),
    BadInput("colon without tag", {"name": "faults/bad:"}, ("name:", "':' must be followed by a tag")),
    BadInput("digest reference", {"name": "faults/bad@sha256:0123"}, ("name:", "digest")),
    BadInput("whitespace in name", {"name": "faults/bad image:1.0"}, ("name:", "whitespace", "remove it")),
    BadInput("invalid tag", {"name": "faults/bad", "tag": "-1.0"}, ("tag:", "-1.0")),
    BadInput("tag too long", {"name": "faults/bad", "tag": "t" * 129}, ("tag:", "longer than 128 characters", "shorter tag")),
    BadInput("empty name", {"name": ""}, ("name:", "must not be empty")),
    BadInput("image id prefix too short", {"name": "sha256:12"}, ("name:", "sha256:12")),
    BadInput("unknown project", {"name": "faults/bad:1.0", "project_uuid": "zzzzz-j7d0g-doesnotexist123", "source": "archive",
                                 "archive_path": "{archive}"},
             ("project_uuid zzzzz-j7d0g-doesnotexist123", "not a project this token can read", "check the uuid")),
    BadInput("malformed project uuid", {"name": "faults/bad:1.0", "project_uuid": "my project", "source": "archive",
                                        "archive_path": "{archive}"}, ("project_uuid 'my project' is not an Arvados uuid", "give the uuid of a project")),
    BadInput("trashed project", {"name": "faults/bad:1.0", "project_uuid": "{trashed_project}", "source": "archive",
                                 "archive_path": "{archive}"}, ("project_uuid", "is trashed", "untrash it, or choose another project")),
    BadInput("project not writable", {"name": "faults/bad:1.0", "project_uuid": "{read_only_project}", "source": "archive",
                                      "archive_path": "{archive}"}, ("project_uuid", "not writable", "can_write")),
    BadInput("expired token", {"name": "faults/bad:1.0"}, ("refused the token", "api_token / ARVADOS_API_TOKEN", "expired"),
             token="expired"),
    BadInput("invalid token", {"name": "faults/bad:1.0"}, ("refused the token", "api_token / ARVADOS_API_TOKEN"), token="invalid"),
    BadInput("token of another cluster", {"name": "faults/bad:1.0"},
             ("refused the token", "issued by cluster yyyyy", "is cluster zzzzz", "api_token / ARVADOS_API_TOKEN"),
             token="other_cluster", unexpected=("expired",)),
    BadInput("no token", {"name": "faults/bad:1.0"}, ("no Arvados API token", "set api_token", "ARVADOS_API_TOKEN"), token="missing"),
    BadInput("wrong host", {"name": "faults/bad:1.0"}, ("does not talk TLS", "check api_host / ARVADOS_API_HOST"), api_host="keep"),
    BadInput("TLS certificate not trusted", {"name": "faults/bad:1.0"}, ("is not trusted", "set api_insecure: true", "ARVADOS_API_HOST_INSECURE"),
             insecure=False),
    BadInput("image in neither daemon nor cluster", {"name": "faults/never-built:1.0"},
             ("name:", "faults/never-built:1.0", "is not in the Docker daemon", "pull it", "the cluster does not hold")),
    BadInput("image without a tag in neither daemon nor cluster", {"name": "faults/never-built"},
             ("is not in the Docker daemon", "'faults/never-built' names no tag, so faults/never-built:latest was looked for")),
    BadInput("collection uuid as project", {"name": "faults/bad:1.0", "project_uuid": "zzzzz-4zz18-0123456789abcde", "source": "archive",
                                            "archive_path": "{archive}"},
             ("project_uuid zzzzz-4zz18-0123456789abcde is the uuid of a collection, not of a project", "give the uuid of a project")),
    BadInput("Docker daemon unreachable", {"name": "faults/never-built:1.0", "docker_host": "unix:///nonexistent/docker.sock"},
             ("docker_host", "cannot reach the Docker daemon", "check docker_host / DOCKER_HOST")),
    BadInput("archive is not a tar", {"name": "faults/bad:1.0", "source": "archive", "archive_path": "{not_a_tar}"},
             ("archive_path:", "is not a tar archive", "docker save")),
    BadInput("truncated archive", {"name": "{image}", "source": "archive", "archive_path": "{truncated}"},
             ("archive_path:", "truncated", "save the archive again")),
    BadInput("archive with two images, none named", {"name": "faults/bad:1.0", "source": "archive", "archive_path": "{two_images}"},
             ("archive_path:", "no image named faults/bad:1.0", "check the name")),
    BadInput("archive missing", {"name": "faults/bad:1.0", "source": "archive", "archive_path": "/nonexistent/image.tar"},
             ("archive_path:", "no such file", "give the path")),
    BadInput("archive_path with source local", {"name": "faults/bad:1.0", "archive_path": "{archive}"},
             ("archive_path is only read with source: archive", "set source: archive")),
    BadInput("source archive without archive_path", {"name": "faults/bad:1.0", "source": "archive"},
             ("source: archive needs archive_path",)),
    BadInput("pull of an image id", {"name": "sha256:0123456789ab", "source": "pull"}, ("name:", "source: pull needs a repository name")),
    BadInput("absent with source pull", {"name": "faults/bad:1.0", "state": "absent", "source": "pull"},
             ("state: absent never pulls", "drop source: pull")),
    BadInput("unknown option", {"name": "faults/bad:1.0", "project": "x"}, ("Unsupported parameters", "project", "project_uuid")),
    BadInput("format the cluster does not run", {"name": "{image}", "source": "archive", "archive_path": "{archive}"},
             ("dockerImageFormats", "v1", "force_image_format: true"), alone=True),
    # The lookup runs on the controller; the token reaches it as a lookup option or the controller's environment.
    BadInput("lookup: empty term", {"term": ""}, ("arvados_docker_image lookup: bad term", "empty"), kind="lookup"),
    BadInput("lookup: whitespace in term", {"term": "faults/bad :1.0"}, ("arvados_docker_image lookup: bad term", "whitespace"),
             kind="lookup"),
    BadInput("lookup: malformed image id", {"term": "sha256:xyz"}, ("arvados_docker_image lookup: bad term", "sha256:xyz"), kind="lookup"),
    BadInput("lookup: misspelt option", {"term": "faults/bad:1.0", "reslt": "uuid"},
             ("arvados_docker_image lookup: unknown option 'reslt'", "did you mean 'result'"), kind="lookup"),
    BadInput("lookup: expired token", {"term": "faults/bad:1.0"}, ("refused the token", "api_token / ARVADOS_API_TOKEN"),
             token="expired", kind="lookup"),
    BadInput("lookup: token of another cluster", {"term": "faults/bad:1.0"}, ("refused the token", "issued by cluster yyyyy"),
             token="other_cluster", kind="lookup", unexpected=("expired",)),
    # The lookup reads a name as the server does (verbatim), and where it finds nothing says what the module would say.
    BadInput("lookup: uppercase repository", {"term": "Faults/Bad:1.0"},
             ('docker image "Faults/Bad:1.0" not found', "repository name 'Faults/Bad' must be lowercase; use 'faults/bad'"), kind="lookup"),
    BadInput("lookup: name as pulled from Docker Hub", {"term": "docker.io/faults/bad:1.0"},
             ("docker.io/faults/bad:1.0 is stored as faults/bad:1.0 (the name Docker lists); use 'faults/bad:1.0'",), kind="lookup"),
    BadInput("lookup: name without a tag", {"term": "faults/never-built"},
             ("'faults/never-built' names no tag, so faults/never-built:latest was looked for",), kind="lookup"),
    BadInput("info: uppercase repository", {"name": "Faults/Bad:1.0"},
             ("name: repository name 'Faults/Bad' must be lowercase; use 'faults/bad'",), kind="info"),
    BadInput("info: malformed project uuid", {"project_uuid": "my project"},
             ("project_uuid 'my project' is not an Arvados uuid", "give the uuid of a project"), kind="info"),
    BadInput("info: collection uuid as project", {"project_uuid": "zzzzz-4zz18-0123456789abcde"},
             ("project_uuid zzzzz-4zz18-0123456789abcde is the uuid of a collection, not of a project",), kind="info"),
    BadInput("info: unknown project", {"project_uuid": "zzzzz-j7d0g-doesnotexist123"},
             ("project_uuid zzzzz-j7d0g-doesnotexist123 is not a project this token can read", "can_read"), kind="info"),
    BadInput("info: malformed image id", {"image_id": "sha256:zz"}, ("image_id", "sha256:zz"), kind="info"),
    # A role's bad item is one line naming its index and key, and fails before any item (here a good first one) is uploaded.
    BadInput("role: item without a name", {"docker_images_items": [{"tag": "1.0"}]},
             ("docker_images_items[0]: no name; give the image as name: repo:tag",), kind="role"),
    BadInput("role: item with an unknown key", {"docker_images_items": [{"name": "faults/bad:1.0", "image": "x"}]},
             ("docker_images_items[0]: unknown key 'image'; the keys are archive_path, exclusive, force, name, ",), kind="role"),
    BadInput("role: misspelt name in the third item", {"docker_images_items": [ROLE_GOOD_ITEM, {"name": "faults/bad:2.0"}, {"nmae": "faults/bad:1.0"}]},
             ("docker_images_items[2]: unknown key 'nmae'; did you mean 'name'?",), kind="role"),
    BadInput("role: misspelt archive_path", {"docker_images_items": [ROLE_GOOD_ITEM, {"name": "faults/bad:1.0", "source": "archive",
                                                                                      "archive_pth": "{archive}"}]},
             ("docker_images_items[1]: unknown key 'archive_pth'; did you mean 'archive_path'?",), kind="role"),
    BadInput("role: uppercase name in the second item", {"docker_images_items": [ROLE_GOOD_ITEM, {"name": "Faults/Bad:1.0"}]},
             ("docker_images_items[1].name: repository name 'Faults/Bad' must be lowercase; use 'faults/bad'.",), kind="role"),
)


@dataclasses.dataclass
class Fixtures:
    """What the cases refer to: projects, archives, tokens."""

    values: dict[str, str]
    tokens: dict[str, str]
    keep_host: str


def prepare(emulator: Emulator, images, dockerd, folder: pathlib.Path) -> Fixtures:
    alice = emulator.api("alice")
    trashed = new_project(emulator, "bad input: trashed")
    alice.groups().trash(uuid=trashed).execute()
    read_only = new_project(emulator, "bad input: bob's", user="bob")
    emulator.api("bob").links().create(body={"link": {"link_class": "permission", "name": "can_read", "head_uuid": read_only,
                                                      "tail_uuid": emulator.users["alice"]["uuid"]}}).execute()
    image = images.build("faults/bad-input-archive", "1.0")
    other = images.build("faults/bad-input-other", "1.0")
    archive = images.save(image.ref, folder / "image.tar")
    truncated = folder / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    not_a_tar = folder / "not-a-tar.tar"
    not_a_tar.write_bytes(b"this is not an image archive\n" * 100)
    two_images = folder / "two-images.tar"
    dockerd.cli("save", "-o", str(two_images), image.ref, other.ref)
    keep = emulator.keep_url.split("//", 1)[1].rstrip("/")
    return Fixtures(
        values={"trashed_project": trashed, "read_only_project": read_only, "archive": str(archive), "image": image.ref,
                "truncated": str(truncated), "not_a_tar": str(not_a_tar), "two_images": str(two_images)},
        tokens={"distinctive": emulator.mint_token("alice", None), "expired": emulator.mint_token("alice", EXPIRED),
                "invalid": "v2/zzzzz-gj3su-0badtoken0000aa/0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd",
                "other_cluster": "v2/yyyyy-gj3su-0badtoken0000aa/0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd"},
        keep_host=keep,
    )


def case_run(case: BadInput, delivery: str, emulator: Emulator, fixtures: Fixtures, docker_host: str) -> tuple[dict, dict[str, str]]:
    """The task and environment of one case; the task is named after the case."""
    api_host = fixtures.keep_host if case.api_host == "keep" else emulator.api_host
    token = fixtures.tokens.get(case.token, "")
    args, env = connection(delivery, api_host, token, insecure=case.insecure)
    if case.token == "missing":
        args.pop("api_token", None)
        env.pop("ARVADOS_API_TOKEN", None)
    filled = filled_in(case.args, fixtures.values)
    if case.kind == "lookup":
        task = lookup_task(filled, args)
    elif case.kind == "role":
        task = role_task(filled, args, docker_host)
    elif case.kind == "info":
        task = module_task({**args, **filled}, module="arvados.cluster.arvados_docker_image_info")
    else:
        task = module_task({"docker_host": docker_host, **args, **filled})
    task["name"] = case.case
    return task, env


def filled_in(value: t.Any, values: t.Mapping[str, str]) -> t.Any:
    """`value` with the {placeholders} of its strings filled, in lists and dictionaries too (the role's items)."""
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, list):
        return [filled_in(item, values) for item in value]
    if isinstance(value, dict):
        return {key: filled_in(item, values) for key, item in value.items()}
    return value


def lookup_task(lookup_args: dict[str, t.Any], connection_args: dict[str, t.Any]) -> dict[str, t.Any]:
    """A task whose argument calls the lookup: options come from task variables, so the task's text holds no token."""
    options = {**connection_args, **{key: value for key, value in lookup_args.items() if key != "term"}}
    keywords = "".join(f", {key}=lookup_{key}" for key in options)
    task = module_task({"msg": f"{{{{ lookup('arvados.cluster.arvados_docker_image', lookup_term{keywords}) }}}}"},
                       module="ansible.builtin.debug")
    task["vars"] = {"lookup_term": lookup_args["term"], **{f"lookup_{key}": value for key, value in options.items()}}
    return task


def role_task(role_vars: dict[str, t.Any], connection_args: dict[str, t.Any], docker_host: str) -> dict[str, t.Any]:
    names = {"api_host": "docker_images_api_host", "api_token": "docker_images_api_token", "api_insecure": "docker_images_api_insecure"}
    variables = {names[key]: value for key, value in connection_args.items()}
    variables.update(docker_images_docker_host=docker_host, **role_vars)
    return module_task({"name": "arvados.cluster.docker_images"}, module="ansible.builtin.include_role", vars=variables)


@dataclasses.dataclass
class TableRuns:
    """Each case's failed result and the run it came from, and what the cases created in the cluster (nothing)."""

    failures: dict[tuple[str, str], tuple[dict[str, t.Any] | None, PlaybookRun]]
    created: set[str]
    secrets: tuple[str, ...]


def playbooks_for(cases: t.Sequence[BadInput], emulator: Emulator, fixtures: Fixtures, docker_host: str) -> list[tuple[list[dict], dict[str, str], str]]:
    """Cases grouped into playbooks: those with the same environment together, each role case alone (its failure ends
    the play). Returns (tasks, environment, delivery) for each playbook."""
    playbooks: list[tuple[list[dict], dict[str, str], str]] = []
    for delivery in DELIVERIES:
        shared: dict[tuple[tuple[str, str], ...], list[dict]] = {}
        for case in cases:
            task, env = case_run(case, delivery, emulator, fixtures, docker_host)
            if case.kind == "role":
                playbooks.append(([task], env, delivery))
            else:
                shared.setdefault(tuple(sorted(env.items())), []).append(task)
        playbooks.extend((tasks, dict(env), delivery) for env, tasks in shared.items())
    return playbooks


def run_cases(runner: AnsibleRunner, cases: t.Sequence[BadInput], emulator: Emulator, fixtures: Fixtures,
              docker_host: str) -> dict[tuple[str, str], tuple[dict[str, t.Any] | None, PlaybookRun]]:
    failures = {}
    with concurrent.futures.ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        started = [(tasks, delivery, pool.submit(runner.run, tasks, env=env)) for tasks, env, delivery in playbooks_for(cases, emulator, fixtures, docker_host)]
        for tasks, delivery, future in started:
            run = future.result()
            for task in tasks:
                # A role fails in a task of its own (its argument check); the other cases fail in their task.
                result = run.first_failure() if task.get("ansible.builtin.include_role") else run.results.get(task["name"])
                failures[task["name"], delivery] = (result, run)
    return failures


@pytest.fixture(scope="module", params=EXECUTIONS)
def table(request, tmp_path_factory, collections_path, images, dockerd) -> t.Iterator[TableRuns]:
    emulator = Emulator(tmp_path_factory.mktemp("bad-input-emulator")).start()
    runner = AnsibleRunner(collections_path, tmp_path_factory.mktemp("bad-input-host"), request.param)
    try:
        fixtures = prepare(emulator, images, dockerd, tmp_path_factory.mktemp("bad-input-files"))
        view = ClusterView(emulator.api("admin"))
        before = view.snapshot()
        failures = run_cases(runner, [case for case in CASES if not case.alone], emulator, fixtures, dockerd.docker_host)
        emulator.set_docker_image_formats(["v1"])
        try:
            failures.update(run_cases(runner, [case for case in CASES if case.alone], emulator, fixtures, dockerd.docker_host))
        finally:
            emulator.set_docker_image_formats(["v2"])
        secrets = tuple(secret for value in fixtures.tokens.values() for secret in (value, value.rsplit("/", 1)[-1]))
        assert runner.executions_seen == {request.param}, f"the image module never ran as {request.param}"
        yield TableRuns(failures=failures, created=view.snapshot().created_since(before), secrets=secrets)
    finally:
        runner.close()
        emulator.stop()


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.case.replace(" ", "-"))
def test_bad_input_is_a_clear_error_that_creates_nothing(table: TableRuns, case: BadInput, delivery: str) -> None:
    failure, run = table.failures[case.case, delivery]
    assert failure is not None and failure["_status"] == "failed", run.describe()
    message = str(failure.get("msg", ""))
    for words in case.expected:
        assert words in message, f"{words!r} not in {message!r}"
    for words in case.unexpected:
        assert words not in message, f"{words!r} in {message!r}"
    assert "Traceback" not in message and "unexpected error" not in message
    if case.kind == "role":
        # One line of the role's own check, not ansible-core's check of the argument spec nor a templating failure.
        assert "\n" not in message and "argument_spec_data" not in failure and "Finalization" not in message, message
    # The API server's internal address, and the Docker daemon's repetition of itself, are left out.
    assert "railsapi.internal" not in message and message.lower().count("no such image") <= 1, message
    assert table.created == set(), "bad input created objects in the cluster"
    assert_no_secret(run, table.secrets)
