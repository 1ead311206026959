# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Which interpreters the action plugin takes for the controller's own Python, and the task environment it applies."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

from ansible_collections.arvados.cluster.plugins.action.arvados_docker_image import _is_this_python, _task_environment


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
