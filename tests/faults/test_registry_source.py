"""`source: registry` through ansible-playbook, with DOCKER_HOST pointing at nothing: the module talks to the registries
alone (Debian's docker-registry with TLS from the tests' CA and htpasswd, the same behind a bearer-token realm, and one
on plain HTTP on 127.0.0.1), and the registries' own logs count the blob reads.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import typing as t

import arvados.collection
import pytest

from cluster import ClusterView
from harness.docker_env import Registry
from harness.registries import PASSWORD, USERNAME, SecureRegistry
from hosts import Host
from playbooks import BIN, EXECUTIONS

NO_DAEMON = "unix:///nonexistent/docker.sock"
IMAGE_LINKS = ("docker_image_hash", "docker_image_repo+tag")


@pytest.fixture()
def delivery() -> str:
    """The token as a module option: these cases are about the registry, not about how the token arrives."""
    return "option"


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory) -> t.Iterator[SecureRegistry]:
    registry = SecureRegistry(tmp_path_factory.mktemp("basic-registry")).start()
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory) -> t.Iterator[SecureRegistry]:
    registry = SecureRegistry(tmp_path_factory.mktemp("token-registry"), token=True).start()
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory) -> t.Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("plain-registry")).start()
    yield registry
    registry.stop()


def registry_args(registry: SecureRegistry, name: str, project: str, **extra: t.Any) -> dict[str, t.Any]:
    args = {"name": f"{registry.address}/{name}", "source": "registry", "project_uuid": project, "docker_host": NO_DAEMON,
            "registry_username": USERNAME, "registry_password": PASSWORD, "registry_ca_path": str(registry.ca_path)}
    args.update(extra)
    return args


def run(host: Host, args: dict[str, t.Any], env: t.Mapping[str, str] | None = None, **options: t.Any) -> t.Any:
    """One run with DOCKER_HOST pointing at nothing; the registry password is a secret that must never show."""
    outcome = host.module(args, env={"DOCKER_HOST": NO_DAEMON, **(env or {})}, **options)
    assert PASSWORD not in outcome.everything(), outcome.describe()
    return outcome


def blob_gets(registry: Registry) -> int:
    return count_requests(registry, "GET", "/blobs/")


def count_requests(registry: Registry, method: str, part: str) -> int:
    lines = registry.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum(1 for line in lines if "response completed" in line and f"http.request.method={method}" in line and part in line
               and "http.response.status=200" in line)


def nothing_created(view: ClusterView, before: t.Any) -> None:
    assert not view.snapshot().created_since(before)


@pytest.mark.parametrize("registry_kind", ["basic", "token"])
def test_upload_then_no_op_reads_no_blob(request, registry_kind, host, images, dockerd, project, admin_view):
    registry = request.getfixturevalue(f"{registry_kind}_registry")
    built = images.build(f"faults/registry-{registry_kind}", "1.0", size=300_000)
    registry.push(dockerd, built.ref)
    args = registry_args(registry, built.ref, project)
    gets = blob_gets(registry)

    checked = run(host, args, check=True)
    assert checked.result["changed"] and checked.result["image_id"] == built.image_id, checked.describe()
    assert any("upload image" in action for action in checked.result["actions"])
    assert blob_gets(registry) - gets <= 1  # check mode may read the config blob (the build time), never a layer

    stored = run(host, args)
    assert stored.result["changed"] and stored.result["image_id"] == built.image_id, stored.describe()
    collection = admin_view.api.collections().get(uuid=stored.result["collection_uuid"]).execute()
    assert collection["properties"]["docker-image-registry-reference"] == f"{registry.address}/{built.ref}"
    assert collection["properties"]["docker-image-manifest-digest"] == registry.manifest_digest(built.repo, built.tag)
    assert admin_view.image_links(project), "links were created"

    # pull: missing (the default): the project's collection records this reference; the registry is not asked.
    asked = registry_requests(registry)
    again = run(host, args)
    assert not again.result["changed"] and again.result["image_id"] == built.image_id, again.describe()
    assert registry_requests(registry) == asked, "pull: missing asked the registry"

    # pull: always: one HEAD of the manifest, no manifest or blob read.
    gets, manifests, heads = blob_gets(registry), count_requests(registry, "GET", "/manifests/"), count_requests(registry, "HEAD", "/manifests/")
    always = run(host, {**args, "pull": "always"})
    assert not always.result["changed"] and always.result["image_id"] == built.image_id, always.describe()
    assert blob_gets(registry) == gets, "a no-op read a blob"
    assert count_requests(registry, "GET", "/manifests/") == manifests
    assert count_requests(registry, "HEAD", "/manifests/") - heads == 1


def registry_requests(registry: Registry) -> int:
    """Every request the registry logged, whatever its method and answer."""
    return sum(1 for line in registry.log_path.read_text(encoding="utf-8", errors="replace").splitlines() if "response completed" in line)


def test_pull_always_sees_the_tag_pushed_anew(host, images, dockerd, basic_registry, project, admin_view):
    """After the tag is pushed anew, check mode with pull: always says changed with the new id (one HEAD, then the new
    manifest); pull: missing keeps the image the project recorded for the reference, asking the registry nothing."""
    first = images.build("faults/registry-moved", "1.0", size=60_000, seed=11)
    basic_registry.push(dockerd, first.ref)
    args = registry_args(basic_registry, first.ref, project)
    assert run(host, args).result["changed"]
    second = images.build("faults/registry-moved", "2.0", size=60_000, seed=12)
    basic_registry.push(dockerd, second.ref, target=first.ref)

    asked = registry_requests(basic_registry)
    missing = run(host, args, check=True)
    assert not missing.result["changed"] and missing.result["image_id"] == first.image_id, missing.describe()
    assert registry_requests(basic_registry) == asked

    before = admin_view.snapshot()
    always = run(host, {**args, "pull": "always"}, check=True, diff=True)
    assert always.result["changed"] and always.result["image_id"] == second.image_id, always.describe()
    assert any("upload image" in action for action in always.result["actions"])
    nothing_created(admin_view, before)
    stored = run(host, {**args, "pull": "always"})
    assert stored.result["changed"] and stored.result["image_id"] == second.image_id, stored.describe()
    assert stored.result["resolves_to"]["is_this_image"], stored.describe()


def test_digest_pinning_links_the_id_only(host, images, dockerd, basic_registry, project, admin_view):
    built = images.build("faults/registry-pinned", "1.0", size=100_000)
    basic_registry.push(dockerd, built.ref)
    digest = basic_registry.manifest_digest(built.repo, built.tag)
    stored = run(host, registry_args(basic_registry, f"{built.repo}@{digest}", project))
    assert stored.result["changed"] and stored.result["image_id"] == built.image_id, stored.describe()
    names = {(link["link_class"], link["name"]) for link in admin_view.image_links(project)}
    assert names == {("docker_image_hash", built.image_id)}

    wrong = "sha256:" + "0" * 64
    refused = run(host, registry_args(basic_registry, f"{built.repo}@{wrong}", project))
    assert refused.failed and "has no" in refused.msg, refused.describe()


def test_index_platform_choice(host, images, dockerd, basic_registry, project):
    amd = images.build("faults/registry-index", "amd", size=100_000)
    arm = images.build("faults/registry-index", "arm", size=120_000)
    for built in (amd, arm):
        basic_registry.push(dockerd, built.ref)
    basic_registry.push_index(amd.repo, {"linux/amd64": "amd", "linux/arm64": "arm"}, "multi")

    default = run(host, registry_args(basic_registry, f"{amd.repo}:multi", project), check=True)
    assert default.result["image_id"] == amd.image_id, default.describe()
    arm64 = run(host, registry_args(basic_registry, f"{amd.repo}:multi", project, platform="linux/arm64"), check=True)
    assert arm64.result["image_id"] == arm.image_id, arm64.describe()
    missing = run(host, registry_args(basic_registry, f"{amd.repo}:multi", project, platform="linux/s390x"))
    assert missing.failed and "platform" in missing.msg and "linux/amd64" in missing.msg and "linux/arm64" in missing.msg, missing.describe()


@pytest.mark.parametrize("registry_kind", ["basic", "token"])
def test_wrong_password_names_the_options(request, registry_kind, host, images, dockerd, project, admin_view):
    registry = request.getfixturevalue(f"{registry_kind}_registry")
    built = images.build(f"faults/registry-password-{registry_kind}", "1.0", size=50_000)
    registry.push(dockerd, built.ref)
    before = admin_view.snapshot()
    refused = host.module(registry_args(registry, built.ref, project, registry_password="not-the-password-81c2"),
                          env={"DOCKER_HOST": NO_DAEMON})
    assert refused.failed and "registry_username" in refused.msg and "registry_password" in refused.msg, refused.describe()
    assert "not-the-password-81c2" not in refused.everything()
    nothing_created(admin_view, before)


def test_unknown_repository(host, basic_registry, project):
    refused = run(host, registry_args(basic_registry, "faults/never-pushed:1.0", project))
    assert refused.failed and "has no" in refused.msg and "name" in refused.msg, refused.describe()


def pushed_layer(images: t.Any, dockerd: t.Any, registry: SecureRegistry, repo: str) -> tuple[t.Any, str, pathlib.Path]:
    """A one-layer image pushed to the registry: the image, its layer's digest, and the file the registry serves it from."""
    built = images.build(repo, "1.0", size=200_000)
    registry.push(dockerd, built.ref)
    manifest = registry.api("GET", f"/v2/{built.repo}/manifests/{built.tag}")[0]
    layer = json.loads(manifest)["layers"][0]["digest"]
    return built, layer, registry.blob_path(layer)


def test_corrupted_blob_creates_nothing(host, images, dockerd, basic_registry, project, admin_view):
    built, layer, path = pushed_layer(images, dockerd, basic_registry, "faults/registry-corrupt")
    genuine = path.read_bytes()
    path.write_bytes(bytes(byte ^ 0xFF for byte in genuine[:64]) + genuine[64:])  # other bytes, same length
    before = admin_view.snapshot()
    refused = run(host, registry_args(basic_registry, built.ref, project))
    assert refused.failed and layer.split(":")[1][:12] in refused.msg, refused.describe()
    nothing_created(admin_view, before)


def test_a_layer_of_other_bytes_that_inflate_the_same_creates_nothing(host, images, dockerd, basic_registry, project, admin_view):
    """Only the blob digest tells: the gzip header's OS byte changed, so the layer still inflates to its diff_id."""
    built, layer, path = pushed_layer(images, dockerd, basic_registry, "faults/registry-regzip")
    genuine = path.read_bytes()
    assert genuine[:2] == b"\x1f\x8b"
    path.write_bytes(genuine[:9] + bytes([genuine[9] ^ 0x01]) + genuine[10:])  # the OS byte: same length, same content
    before = admin_view.snapshot()
    refused = run(host, registry_args(basic_registry, built.ref, project))
    assert refused.failed and layer.split(":")[1] in refused.msg, refused.describe()
    nothing_created(admin_view, before)


def test_unreachable_registry(host, project):
    refused = run(host, {"name": "127.0.0.1:9/faults/x:1.0", "source": "registry", "project_uuid": project, "docker_host": NO_DAEMON})
    assert refused.failed and "cannot reach registry 127.0.0.1:9" in refused.msg, refused.describe()


def test_untrusted_certificate(host, images, dockerd, basic_registry, project):
    built = images.build("faults/registry-untrusted", "1.0", size=50_000)
    basic_registry.push(dockerd, built.ref)
    args = registry_args(basic_registry, built.ref, project)
    del args["registry_ca_path"]
    refused = run(host, args)
    assert refused.failed and "not trusted" in refused.msg and "registry_ca_path" in refused.msg, refused.describe()
    insecure = run(host, {**args, "registry_insecure": True}, check=True)
    assert insecure.result["image_id"] == built.image_id, insecure.describe()


def test_plain_http_on_loopback_without_credentials(host, images, plain_registry, project):
    built = images.build("faults/registry-plain", "1.0", size=50_000)
    pushed = images.push(built.ref, plain_registry)
    stored = run(host, {"name": pushed, "source": "registry", "project_uuid": project, "docker_host": NO_DAEMON})
    assert stored.result["changed"] and stored.result["image_id"] == built.image_id, stored.describe()


def test_registry_options_refused_with_other_sources(host, project):
    refused = run(host, {"name": "faults/x:1.0", "source": "local", "project_uuid": project, "registry_insecure": True})
    assert refused.failed and "registry_insecure" in refused.msg and "source: registry" in refused.msg, refused.describe()


def test_stored_archive_loads_under_the_same_id(host, images, dockerd, basic_registry, project, admin_view, tmp_path):
    """Read back from Keep, the archive loads into the private dockerd as the registry's config digest, a container from it
    runs, and skopeo's docker-archive reader (the one `singularity build ... docker-archive://` uses) reads it."""
    built = images.build("faults/registry-loads", "1.0", size=150_000)
    basic_registry.push(dockerd, built.ref)
    stored = run(host, registry_args(basic_registry, built.ref, project))
    assert stored.result["changed"], stored.describe()
    archive = tmp_path / "stored.tar"
    reader = arvados.collection.CollectionReader(stored.result["portable_data_hash"], api_client=admin_view.api)
    with reader.open(f"{built.image_id}.tar", "rb") as stored_file, archive.open("wb") as out:
        for chunk in iter(lambda: stored_file.read(1 << 20), b""):
            out.write(chunk)
    images.remove(built.ref)
    loaded = dockerd.cli("load", "-i", str(archive))
    assert built.image_id in loaded.stdout, loaded.stdout
    ran = dockerd.cli("run", "--rm", "--network", "none", built.image_id, "/bin/busybox", "echo", "loaded")
    assert "loaded" in ran.stdout
    inspected = subprocess.run(["/usr/bin/skopeo", "inspect", "--raw", f"docker-archive:{archive}"], capture_output=True, text=True, check=False)
    assert inspected.returncode == 0 and built.image_id in inspected.stdout, inspected.stderr


HELPER = """#!/bin/sh
# docker-credential-helpers' protocol: `get` reads the registry on stdin, answers JSON, or says it holds nothing.
[ "$1" = get ] || exit 2
server=$(cat)
printf '%s|' "$server" >> "{log}"
if [ "$server" = "{address}" ]; then
  printf '{{"ServerURL": "%s", "Username": "{username}", "Secret": "{password}"}}' "$server"
else
  echo "credentials not found in native keychain"
  exit 1
fi
"""


def helper_env(tmp_path: pathlib.Path, config: dict[str, t.Any], address: str) -> tuple[dict[str, str], pathlib.Path]:
    """DOCKER_CONFIG holding `config`, and docker-credential-arvtest on PATH answering for `address`; its log of requests."""
    bin_dir, docker_dir, log = tmp_path / "helper-bin", tmp_path / "docker-config", tmp_path / "helper.log"
    bin_dir.mkdir()
    docker_dir.mkdir()
    helper = bin_dir / "docker-credential-arvtest"
    helper.write_text(HELPER.format(log=log, address=address, username=USERNAME, password=PASSWORD), encoding="utf-8")
    helper.chmod(0o755)
    (docker_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    env = {"DOCKER_HOST": NO_DAEMON, "DOCKER_CONFIG": str(docker_dir), "PATH": f"{bin_dir}:{BIN}:{os.environ['PATH']}"}
    return env, log


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize("store", ["credHelpers", "credsStore"])
def test_credential_helper_gives_the_login(store, execution, host, images, dockerd, token_registry, project, tmp_path):
    """A credential helper named for the registry, or as the store of every registry, is asked as Docker asks it: `get`
    with the registry on stdin; its login passes the token realm. Run in the controller and shipped alike."""
    built = images.build(f"faults/registry-helper-{store.lower()}-{execution}", "1.0", size=50_000)
    token_registry.push(dockerd, built.ref)
    address = token_registry.address
    config = {"credHelpers": {address: "arvtest"}} if store == "credHelpers" else {"credsStore": "arvtest", "auths": {address: {}}}
    env, log = helper_env(tmp_path, config, address)
    args = {"name": f"{address}/{built.ref}", "source": "registry", "project_uuid": project,
            "registry_ca_path": str(token_registry.ca_path)}
    checked = run(host, args, env=env, check=True)
    assert checked.result["changed"] and checked.result["image_id"] == built.image_id, checked.describe()
    assert log.read_text(encoding="utf-8") == f"{address}|"
    assert host.runner.executions_seen == {execution}


def test_credential_helper_without_a_login_or_not_installed(host, images, dockerd, basic_registry, project, tmp_path):
    """A helper that holds nothing for the registry means anonymous access, which this registry refuses; a helper that is
    not installed fails naming it."""
    built = images.build("faults/registry-helper-none", "1.0", size=50_000)
    basic_registry.push(dockerd, built.ref)
    env, log = helper_env(tmp_path, {"credsStore": "arvtest"}, "elsewhere.example:5000")
    args = {"name": f"{basic_registry.address}/{built.ref}", "source": "registry", "project_uuid": project,
            "registry_ca_path": str(basic_registry.ca_path)}
    anonymous = run(host, args, env=env)
    assert anonymous.failed and "anonymous access" in anonymous.msg and "registry_username" in anonymous.msg, anonymous.describe()
    assert log.read_text(encoding="utf-8") == f"{basic_registry.address}|"
    (pathlib.Path(env["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps({"credsStore": "absent"}), encoding="utf-8")
    missing = run(host, args, env=env)
    assert missing.failed and "docker-credential-absent" in missing.msg and "install it" in missing.msg, missing.describe()


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_the_role_with_registry_items_never_shows_the_password(execution, host, images, dockerd, basic_registry, token_registry,
                                                               project, admin_view):
    """One item with its own login and CA, one with the role's; at -vvv, the password shows nowhere, in the real run or
    the re-run (which trusts the listing and runs no module)."""
    own = images.build(f"faults/registry-role-own-{execution}", "1.0", size=60_000)
    shared = images.build(f"faults/registry-role-shared-{execution}", "1.0", size=70_000)
    basic_registry.push(dockerd, own.ref)
    token_registry.push(dockerd, shared.ref)
    items = [{"name": f"{basic_registry.address}/{own.ref}", "registry_username": USERNAME, "registry_password": PASSWORD,
              "registry_ca_path": str(basic_registry.ca_path)},
             {"name": f"{token_registry.address}/{shared.ref}"}]
    role_vars = {"docker_images_items": items, "docker_images_project_uuid": project, "docker_images_source": "registry",
                 "docker_images_registry_username": USERNAME, "docker_images_registry_password": PASSWORD,
                 "docker_images_registry_ca_path": str(token_registry.ca_path), "docker_images_docker_host": NO_DAEMON,
                 **{f"docker_images_{key}": value for key, value in host.connection_args().items()}}
    tasks = [{"name": "the role", "ansible.builtin.include_role": {"name": "arvados.cluster.docker_images"}, "vars": role_vars},
             {"name": "task under test", "ansible.builtin.debug": {"msg": "{{ docker_images_collections }}"}}]
    for expected_changed in (True, False):
        role_run = host.checked(host.runner.run(tasks, env={**host.env(), "DOCKER_HOST": NO_DAEMON}))
        assert role_run.first_failure() is None, role_run.describe()
        assert PASSWORD not in role_run.everything(), "the registry password showed"
        published = role_run.results["task under test"]["msg"]
        expected = [(own.image_id, expected_changed), (shared.image_id, expected_changed)]
        assert [(image["image_id"], image["changed"]) for image in published] == expected
    assert host.runner.executions_seen == {execution}


def test_upstream_listing_and_the_lookup_see_an_image_from_a_registry(host, images, dockerd, basic_registry, project, emulator):
    """Stored from a registry with no daemon, the image is what `arv-keepdocker images` lists and what the lookup
    resolves its repo:tag to, as for any other upload."""
    built = images.build("faults/registry-interop", "1.0", size=80_000)
    basic_registry.push(dockerd, built.ref)
    stored = run(host, registry_args(basic_registry, built.ref, project))
    assert stored.result["changed"], stored.describe()
    repo = f"{basic_registry.address}/{built.repo}"

    env = {**os.environ, "ARVADOS_API_HOST": emulator.api_host, "ARVADOS_API_TOKEN": host.token, "ARVADOS_API_HOST_INSECURE": "1",
           "DOCKER_HOST": NO_DAEMON}
    listed = subprocess.run([str(BIN / "arv-keepdocker"), "images"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert [repo, built.tag, built.image_id[:12], stored.result["collection_uuid"]] in [row[:4] for row in rows], listed.stdout

    lookup = (f"{{{{ lookup('arvados.cluster.arvados_docker_image', '{repo}:{built.tag}', project_uuid='{project}', "
              f"api_host='{emulator.api_host}', api_token='{host.token}', api_insecure=true) }}}}")
    resolved = host.checked(host.runner.run([{"name": "task under test", "ansible.builtin.debug": {"msg": lookup}}], env=host.env()))
    assert resolved.results["task under test"]["msg"] == stored.result["portable_data_hash"], resolved.describe()
