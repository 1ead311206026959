"""The token in output, results, diffs, warnings and errors at -vvv.

Every run of this suite already fails if the token (or its secret part) shows anywhere; these tests add the paths
where a token would most likely leak, and check that the check itself catches a leak. Each test runs with the
module's code in the controller (the action plugin masks the result itself) and shipped as a module.
"""
from __future__ import annotations

import pytest

from hosts import Host, assert_no_secret
from playbooks import EXECUTIONS, TASK_UNDER_TEST

NO_LOG_PLACEHOLDER = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
REDACTED = "********"


@pytest.fixture(params=EXECUTIONS)
def execution(request) -> str:
    return request.param


def test_the_leak_check_catches_a_printed_token(host: Host) -> None:
    """A run that prints the token must fail the check every other test relies on."""
    run = host.runner.run([{"name": TASK_UNDER_TEST, "ansible.builtin.debug": {"msg": f"secret part {host.secrets[1]}"}}])
    assert run.rc == 0, run.describe()
    with pytest.raises(AssertionError, match="a secret appeared"):
        assert_no_secret(run, host.secrets)


def test_the_token_option_is_no_log(host: Host, project: str, build_image) -> None:
    """At -vvv the module's arguments are printed with the token replaced; check and diff modes print no token either."""
    image = build_image()
    run = host.module({"name": image.repo_tag, "project_uuid": project}, check=True, diff=True)
    assert run.rc == 0 and run.result["changed"], run.describe()
    assert "diff" in run.result and run.result["invocation"]["module_args"]["api_token"] == NO_LOG_PLACEHOLDER, run.describe()
    assert NO_LOG_PLACEHOLDER in run.stdout


@pytest.mark.parametrize("echoed", ["token", "secret part"])
def test_a_token_echoed_by_the_server_is_redacted(host: Host, build_image, echoed: str) -> None:
    """A server (or proxy) that repeats the token in an error: the module's message keeps the cause and hides the token."""
    emulator = host.emulator
    image = build_image()
    shown = host.token if echoed == "token" else host.secrets[1]
    emulator.inject_fault("GET", "/arvados/v1/links", status=401, message=f"token {shown} is not valid here")

    run = host.module({"name": image.repo_tag})

    assert run.failed, run.describe()
    assert "refused the token" in run.msg and f"token {REDACTED} is not valid here" in run.msg, run.msg


def test_a_token_echoed_in_a_retried_failure_is_redacted(host: Host, build_image) -> None:
    """Failures that are retried until the budget is spent end in a message that still hides the token."""
    emulator = host.emulator
    image = build_image()
    emulator.inject_fault("GET", "/arvados/v1/links", status=503, count=50, message=f"overloaded, {host.secrets[1]} queued")

    run = host.module({"name": image.repo_tag, "num_retries": 1})

    assert run.failed, run.describe()
    assert "answered 503" in run.msg and f"overloaded, {REDACTED} queued" in run.msg and "gave up after 1 retry" in run.msg, run.msg
