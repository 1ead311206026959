"""Where the connection comes from, and what happens when it cannot be made, through ansible-playbook.

An API server that refuses connections, shows an untrusted certificate, or answers past api_timeout: at the default
settings the module fails within 60 s with an error that names the cause and the fix, whichever way it got its
connection. Those runs start with the session (see connection_scenarios.py); a run still going after 60 s is stopped
and its test fails. The 60 s bound is a correctness requirement of the module, not a speed target.

The one precedence, options, then the variables arvados_api_* (templated), then the environment: the lookups, the
modules (their code run in the controller and shipped) and the docker_images role all take a token from a variable
that refers to another, or is vaulted, over a different token in ARVADOS_API_TOKEN, and act as that one user.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys
import sysconfig
import typing as t

import pytest

from cluster import ExpectedImage
from connection_scenarios import (
    FAIL_WITHIN_SECONDS,
    SCENARIO_DELIVERIES,
    SCENARIOS,
    ConnectionScenarios,
    Scenario,
    variables_connection,
    vaulted_variables_file,
)
from harness.emulator import Emulator
from hosts import assert_no_secret
from playbooks import EXECUTIONS, SHIPPED, TASK_UNDER_TEST, AnsibleRunner, PlaybookRun, module_task

ROLE = "arvados.cluster.docker_images"
# The distributions of the Arvados SDK, as they sit in site-packages.
ARVADOS_SDK_FILES = ("arvados", "arvados_python_client-")
# What -vvv says when the image module takes connection options from the variables (names only, never values).
FROM_VARIABLES = "ARVADOS CONNECTION from the variables"


@pytest.mark.timeout(2 * FAIL_WITHIN_SECONDS)
@pytest.mark.parametrize("delivery", SCENARIO_DELIVERIES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name.replace(" ", "-"))
def test_fails_clearly_within_a_minute(connection_scenarios: ConnectionScenarios, scenario: Scenario, delivery: str) -> None:
    run = connection_scenarios.runs()[scenario.name, delivery]
    assert run is not None, f"{scenario.name}: the module was still running after {FAIL_WITHIN_SECONDS} s"
    assert run.failed, run.describe()
    for words in scenario.expected:
        assert words in run.msg, f"{words!r} not in {run.msg!r}"
    token = connection_scenarios.token
    assert_no_secret(run, (token, token.rsplit("/", 1)[-1]))


# ---- the one precedence: options, then the templated arvados_* variables, then the environment -------------------


@pytest.fixture(params=EXECUTIONS)
def execution(request) -> str:
    """The module's code run in the controller, and shipped: both must read the variables on the controller."""
    return request.param


class Identities:
    """Alice's token, for the variables, and Bob's, a valid token of another user, in the environment of every run."""

    def __init__(self, emulator: Emulator, alice_token: str) -> None:
        self.emulator = emulator
        self.alice_token = alice_token
        self.bob_token = emulator.mint_token("bob", None)
        self.alice_uuid = emulator.users["alice"]["uuid"]
        self.bob_uuid = emulator.users["bob"]["uuid"]

    def bob_environment(self) -> dict[str, str]:
        """The controller's environment: the cluster, with Bob's token."""
        return {"ARVADOS_API_HOST": self.emulator.api_host, "ARVADOS_API_TOKEN": self.bob_token, "ARVADOS_API_HOST_INSECURE": "1"}

    def checked(self, run: PlaybookRun) -> PlaybookRun:
        for token in (self.alice_token, self.bob_token):
            assert_no_secret(run, (token, token.rsplit("/", 1)[-1]))
        return run


@pytest.fixture()
def identities(quiet_emulator, alice_token) -> Identities:
    return Identities(quiet_emulator, alice_token)


def test_a_lookup_takes_a_token_variable_that_refers_to_another(collections_path, tmp_path, identities: Identities, project: str,
                                                                dockerd, build_image: t.Callable[..., ExpectedImage]) -> None:
    """group_vars' `arvados_api_token: "{{ vault_token }}"` reaches the lookups templated, over ARVADOS_API_TOKEN."""
    image = build_image()
    runner = AnsibleRunner(collections_path, tmp_path / "lookup-host")
    try:
        stored = identities.checked(runner.module({"name": image.repo_tag, "project_uuid": project, "api_host": identities.emulator.api_host,
                                                   "api_token": identities.alice_token, "api_insecure": True,
                                                   "docker_host": dockerd.docker_host}))
        assert stored.result.get("_status") == "ok", stored.describe()
        variables = variables_connection(None, identities.alice_token, insecure=None, token_variable="vault_token")
        variables.update(cluster_retries="{{ 1 + 1 }}", arvados_num_retries="{{ cluster_retries }}", arvados_api_timeout="{{ 10 }}")
        run = identities.checked(runner.run([
            {"name": TASK_UNDER_TEST, "ansible.builtin.set_fact": {
                "user_uuid": "{{ lookup('arvados.cluster.arvados_current_user') }}",
                "pinned": f"{{{{ lookup('arvados.cluster.arvados_docker_image', '{image.repo_tag}', project_uuid='{project}') }}}}"}},
        ], env=identities.bob_environment(), variables=variables))
    finally:
        runner.close()
    assert run.result.get("_status") == "ok", run.describe()
    facts = run.result["ansible_facts"]
    assert facts["user_uuid"] == identities.alice_uuid
    assert facts["pinned"] == image.portable_data_hash


def test_a_lookup_option_beats_the_variable(collections_path, tmp_path, identities: Identities) -> None:
    runner = AnsibleRunner(collections_path, tmp_path / "lookup-host")
    try:
        variables = variables_connection(identities.emulator.api_host, identities.alice_token)
        run = identities.checked(runner.run([
            {"name": TASK_UNDER_TEST, "ansible.builtin.set_fact": {
                "user_uuid": "{{ lookup('arvados.cluster.arvados_current_user', api_token=bob_token) }}"}},
        ], variables={**variables, "bob_token": identities.bob_token}))
    finally:
        runner.close()
    assert run.result.get("ansible_facts", {}).get("user_uuid") == identities.bob_uuid, run.describe()


def test_the_module_takes_a_vaulted_token_from_the_variables(runner: AnsibleRunner, tmp_path, identities: Identities, project: str,
                                                             admin_view, dockerd, build_image: t.Callable[..., ExpectedImage]) -> None:
    """In the controller and shipped alike: a vaulted token behind a templated arvados_api_token, Bob's in the environment.

    With Bob's token the upload would fail: Bob cannot write Alice's project.
    """
    image = build_image()
    vault_env = vaulted_variables_file(tmp_path / "vaulted.yml", {"vault_token": identities.alice_token})
    variables = variables_connection(None, None, insecure=None, token_variable="vault_token")
    run = identities.checked(runner.run([
        {"name": "read the vaulted variables", "ansible.builtin.include_vars": {"file": str(tmp_path / "vaulted.yml")}},
        module_task({"name": image.repo_tag, "project_uuid": project, "docker_host": dockerd.docker_host}),
    ], env={**identities.bob_environment(), **vault_env}, variables=variables))
    assert run.result.get("_status") == "ok" and run.result["changed"], run.describe()
    assert run.executions() == {runner.execution}
    assert f"{FROM_VARIABLES} arvados_api_token" in run.stdout
    assert run.result["invocation"]["module_args"]["api_token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    collection = admin_view.api.collections().get(uuid=run.result["collection_uuid"]).execute()
    assert (collection["owner_uuid"], collection["modified_by_user_uuid"]) == (project, identities.alice_uuid)
    assert collection["portable_data_hash"] == image.portable_data_hash


def test_every_connection_variable_reaches_the_module_templated(runner: AnsibleRunner, identities: Identities, project: str) -> None:
    """Host, token, insecure, retries and timeout from variables, with nothing in the environment; a project read only."""
    variables = variables_connection(identities.emulator.api_host, identities.alice_token)
    variables.update(cluster_retries=1, arvados_num_retries="{{ cluster_retries }}", arvados_api_timeout="{{ 5 + 5 }}")
    run = identities.checked(runner.run([module_task({"name": "faults/never:1.0", "state": "absent", "project_uuid": project})],
                                        variables=variables))
    assert run.result.get("_status") == "ok" and not run.result["changed"], run.describe()
    assert run.executions() == {runner.execution}
    arguments = run.result["invocation"]["module_args"]
    assert (arguments["api_host"], arguments["api_insecure"], arguments["num_retries"], arguments["api_timeout"]) == (
        identities.emulator.api_host, True, 1, 10)
    assert (f"{FROM_VARIABLES} arvados_api_host, arvados_api_insecure, arvados_api_timeout, arvados_api_token, "
            "arvados_num_retries") in run.stdout


def test_a_module_option_beats_the_variable(runner: AnsibleRunner, identities: Identities, project: str) -> None:
    """The option's token (Alice's) over a variable's (Bob's, who cannot read the project)."""
    variables = variables_connection(identities.emulator.api_host, identities.bob_token)
    run = identities.checked(runner.run([module_task({"name": "faults/never:1.0", "state": "absent", "project_uuid": project,
                                                      "api_token": identities.alice_token})], variables=variables))
    assert run.result.get("_status") == "ok", run.describe()
    assert f"{FROM_VARIABLES} arvados_api_host, arvados_api_insecure" in run.stdout
    assert "arvados_api_token" not in run.stdout


def test_without_variables_the_module_reads_the_environment(runner: AnsibleRunner, identities: Identities, project: str, dockerd,
                                                            build_image: t.Callable[..., ExpectedImage]) -> None:
    """Bob's token from the environment, where no option or variable sets one: Bob cannot write Alice's project."""
    image = build_image()
    run = identities.checked(runner.run([module_task({"name": image.repo_tag, "project_uuid": project, "docker_host": dockerd.docker_host})],
                                        env=identities.bob_environment()))
    assert run.failed, run.describe()
    assert f"project_uuid {project}" in run.msg, run.msg
    assert FROM_VARIABLES not in run.stdout


def test_the_role_acts_as_the_variables_user_in_every_task(runner: AnsibleRunner, identities: Identities, admin_view, dockerd,
                                                           build_image: t.Callable[..., ExpectedImage]) -> None:
    """The token in a variable (a template of another), Bob's in ARVADOS_API_TOKEN, no project: Alice's home project.

    The home project, the lookups' reads and the upload all act as Alice; any task acting as Bob would fail (Bob cannot
    write Alice's home project) or publish another answer (Bob cannot read Alice's images).
    """
    image = build_image()
    bob_objects_before = objects_of(admin_view, identities.bob_uuid)
    variables = variables_connection(None, identities.alice_token, insecure=None, token_variable="team_token")
    role_vars = {"docker_images_items": [{"name": image.repo_tag}], "docker_images_docker_host": dockerd.docker_host}
    run = identities.checked(runner.run([
        {"name": "the role", "ansible.builtin.include_role": {"name": ROLE}, "vars": role_vars},
        {"name": TASK_UNDER_TEST, "ansible.builtin.debug": {"msg": {"collections": "{{ docker_images_collections }}",
                                                                    "resolved": "{{ docker_images_resolved }}"}}},
    ], env=identities.bob_environment(), variables=variables))
    assert run.first_failure() is None, run.describe()
    assert run.executions() == {runner.execution}
    published = run.result["msg"]
    [collection] = published["collections"]
    assert (collection["project_uuid"], collection["changed"], collection["checked_by"]) == (identities.alice_uuid, True, "module")
    assert published["resolved"] == {image.repo_tag: image.portable_data_hash}
    stored = admin_view.api.collections().get(uuid=collection["collection_uuid"]).execute()
    assert (stored["owner_uuid"], stored["modified_by_user_uuid"]) == (identities.alice_uuid, identities.alice_uuid)
    assert objects_of(admin_view, identities.bob_uuid) == bob_objects_before


def objects_of(admin_view, user_uuid: str) -> set[str]:
    """The collections and links a user created or owns."""
    found = set()
    for resource in (admin_view.api.collections(), admin_view.api.links()):
        for field in ("owner_uuid", "modified_by_user_uuid"):
            items = resource.list(filters=[[field, "=", user_uuid]], limit=1000).execute()["items"]
            found.update(item["uuid"] for item in items)
    return found


# ---- a Python without the Arvados SDK ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_without_arvados(tmp_path_factory) -> str:
    """A virtual environment of this python holding every package this one has but the Arvados SDK, which it truly
    cannot import."""
    folder = tmp_path_factory.mktemp("without-arvados")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site_packages = pathlib.Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                                check=True, capture_output=True, text=True).stdout.strip())
    for entry in pathlib.Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(ARVADOS_SDK_FILES):
            (site_packages / entry.name).symlink_to(entry)
    assert subprocess.run([str(python), "-c", "import arvados"], capture_output=True, check=False).returncode != 0
    return str(python)


def test_without_the_arvados_sdk_each_plugin_names_the_python_and_how_to_install_it(
        collections_path, tmp_path, python_without_arvados: str, identities: Identities) -> None:
    """The controller and the managed host run a python without the SDK: the lookups fail in the controller, the
    modules shipped (their action plugins ship them when the controller lacks the SDK), each naming that python and
    the pip command to run with it."""
    runner = AnsibleRunner(collections_path, tmp_path / "host", SHIPPED, python=python_without_arvados)
    lookups = {name: f"{{{{ lookup('arvados.cluster.{name}'{args}) }}}}"
               for name, args in (("arvados_docker_image", ", 'faults/tiny:1.0'"), ("arvados_current_user", ""))}
    tasks = [{"name": name, "ansible.builtin.debug": {"msg": term}, "ignore_errors": True} for name, term in lookups.items()]
    tasks += [{"name": module, f"arvados.cluster.{module}": {"name": "faults/tiny:1.0"}, "ignore_errors": True}
              for module in ("arvados_docker_image", "arvados_docker_image_info")]
    try:
        run = identities.checked(runner.run(tasks, env=identities.bob_environment()))
    finally:
        runner.close()
    for task in tasks:
        result = run.results.get(task["name"], {})
        message = str(result.get("msg", ""))
        assert result.get("_status") == "failed", run.describe()
        assert f"the arvados-python-client library is required, and {python_without_arvados} cannot import it" in message, message
        assert f"`{python_without_arvados} -m pip install arvados-python-client`" in message, message
    assert run.executions() == {SHIPPED}
