# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The action plugins' base: which interpreters it takes for the controller's own Python, the task environment it applies, and
a module's code run in the controller with its connection completed from the variables."""

from __future__ import annotations

import os
import pathlib
import sys
import typing as t

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar, trust_as_template

from ansible_collections.arvados.cluster.plugins.module_utils._arvados import ARVADOS_CONNECTION_SPEC
from ansible_collections.arvados.cluster.plugins.module_utils._errors import OptionError
from ansible_collections.arvados.cluster.plugins.module_utils._task import TaskContext
from ansible_collections.arvados.cluster.plugins.plugin_utils._controller_action import (
    ControllerAction,
    ModuleCode,
    _is_this_python,
    _task_environment,
)


@pytest.fixture()
def controller_python(tmp_path, monkeypatch) -> pathlib.Path:
    """A virtual environment's folder as the controller runs from it: python3.12, with python a link to it."""
    folder = tmp_path / "venv" / "bin"
    folder.mkdir(parents=True)
    binary = folder / "python3.12"
    binary.write_text("", encoding="utf-8")
    (folder / "python").symlink_to("python3.12")
    monkeypatch.setattr(sys, "executable", str(binary))
    return binary


def test_the_controllers_python_is_this_python(controller_python) -> None:
    assert _is_this_python(str(controller_python))


def test_another_name_for_it_in_the_same_folder_is_this_python(controller_python) -> None:
    assert _is_this_python(str(controller_python.parent / "python"))


def test_a_link_to_it_from_another_folder_is_not(controller_python, tmp_path) -> None:
    """A virtual environment is found from the folder of the path run, so a link elsewhere may be another environment."""
    link = tmp_path / "python"
    link.symlink_to(controller_python)
    assert not _is_this_python(str(link))


def test_a_wrapper_script_is_not(controller_python, tmp_path) -> None:
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {controller_python} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    assert not _is_this_python(str(wrapper))


def test_another_python_in_the_same_folder_is_not(controller_python) -> None:
    other = controller_python.parent / "python3.11"
    other.write_text("", encoding="utf-8")
    assert not _is_this_python(str(other))


def test_a_missing_interpreter_is_not(controller_python) -> None:
    assert not _is_this_python(str(controller_python.parent / "python3"))


def test_the_task_environment_applies_while_the_code_runs_only(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_HOST", "before.example")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with _task_environment({"ARVADOS_API_HOST": "task.example", "DOCKER_HOST": "unix:///run/task.sock", "RETRIES": 3}):
        assert os.environ["ARVADOS_API_HOST"] == "task.example"
        assert os.environ["DOCKER_HOST"] == "unix:///run/task.sock"
        assert os.environ["RETRIES"] == "3"
    assert os.environ["ARVADOS_API_HOST"] == "before.example"
    assert "DOCKER_HOST" not in os.environ and "RETRIES" not in os.environ


# ---- a module's code run in the controller, with its connection options from the variables -------------------------

TOKEN = "v2/zzzzz-gj3su-000000000000001/tokenfromthevariables"
ACTION = "arvados.cluster.fake_module"


def fake_argument_spec() -> dict[str, t.Any]:
    return {"name": {"type": "str", "required": True}, **ARVADOS_CONNECTION_SPEC}


def fake_task(context: TaskContext) -> dict[str, t.Any]:
    """What a module's task does with its context, or how it fails, as the name asks."""
    if context.params["name"] == "bad input":
        raise OptionError("name: not an image")
    if context.params["name"] == "bug":
        raise KeyError("surprise")
    context.warn("a warning")
    return {"changed": not context.check_mode, "api_host": context.params["api_host"], "said": f"used {context.params['api_token']}",
            "from_environment": os.environ.get("FAKE_TASK_VARIABLE")}


class FakeAction(ControllerAction):
    module_code = ModuleCode(fake_argument_spec, fake_task)


def run_action(task_args: dict[str, t.Any], variables: dict[str, t.Any] | None = None, **task_keywords: t.Any) -> dict[str, t.Any]:
    """The action plugin's run of one task on localhost through the local connection with this very Python."""
    task_vars = {"ansible_python_interpreter": sys.executable, "inventory_hostname": "localhost"}
    task_vars.update({name: trust_as_template(value) for name, value in (variables or {}).items()})
    task = Task()
    task.args = task_args
    task.action = task._resolved_action = ACTION  # pylint: disable=protected-access
    for keyword, value in task_keywords.items():
        setattr(task, keyword, value)
    play_context = PlayContext()
    loader = DataLoader()
    action = FakeAction(task=task, connection=connection_loader.get("local", play_context, None), play_context=play_context,
                        loader=loader, templar=Templar(loader=loader, variables=task_vars), shared_loader_obj=None)
    return action.run(task_vars=task_vars)


@pytest.fixture(autouse=True)
def no_arvados_environment(monkeypatch) -> None:
    for name in ("ARVADOS_API_HOST", "ARVADOS_API_TOKEN", "ARVADOS_API_HOST_INSECURE", "FAKE_TASK_VARIABLE"):
        monkeypatch.delenv(name, raising=False)


def test_the_connection_comes_from_the_templated_variables_and_the_token_is_masked(monkeypatch) -> None:
    monkeypatch.setenv("ANSIBLE_INJECT_INVOCATION", "1")  # the default before ansible-core 2.20
    result = run_action({"name": "tiny"}, {"cluster": "zzzzz", "arvados_api_host": "{{ cluster }}.example.org",
                                           "vault_token": TOKEN, "arvados_api_token": "{{ vault_token }}"})
    assert result["api_host"] == "zzzzz.example.org"
    assert result["said"] == "used ********"
    assert result["invocation"]["module_args"]["api_token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert result["warnings"] == ["a warning"]
    assert TOKEN not in repr(result)


def test_task_options_beat_the_variables(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_HOST", "environment.example.org")
    result = run_action({"name": "tiny", "api_host": "option.example.org"}, {"arvados_api_host": "variable.example.org"})
    assert result["api_host"] == "option.example.org"


def test_without_options_or_variables_the_environment_answers(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_HOST", "environment.example.org")
    assert run_action({"name": "tiny"})["api_host"] == "environment.example.org"


def test_the_tasks_environment_applies(monkeypatch) -> None:
    result = run_action({"name": "tiny"}, environment=[{"FAKE_TASK_VARIABLE": "from the task"}])
    assert result["from_environment"] == "from the task"
    assert "FAKE_TASK_VARIABLE" not in os.environ


def test_check_mode_reaches_the_task() -> None:
    assert run_action({"name": "tiny"}, check_mode=True)["changed"] is False
    assert run_action({"name": "tiny"})["changed"] is True


def test_invalid_arguments_fail_as_the_shipped_module_fails() -> None:
    result = run_action({"name": "tiny", "colour": "red"})
    assert result["failed"] is True
    assert result["msg"].startswith(f"Unsupported parameters for ({ACTION}) module: colour")
    assert run_action({})["msg"] == "missing required arguments: name"


def test_an_expected_failure_is_its_message_and_a_bug_has_its_traceback() -> None:
    expected = run_action({"name": "bad input"})
    assert (expected["failed"], expected["msg"], "exception" in expected) == (True, "name: not an image", False)
    bug = run_action({"name": "bug"})
    assert bug["failed"] is True and "KeyError" in bug["msg"] and "Traceback" in bug["exception"]


def test_code_that_does_not_import_here_is_never_run_here() -> None:
    code = ModuleCode.unavailable(ImportError("no arvados here"))
    assert code.import_error is not None
    with pytest.raises(ImportError, match="no arvados here"):
        code.task(TaskContext(params={}, check_mode=False, diff=False, warn=print))
