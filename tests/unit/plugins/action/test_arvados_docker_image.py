# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Which interpreters the action plugin takes for the controller's own Python, and the task environment it applies."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.arvados.cluster.plugins.action.arvados_docker_image import _is_this_python, _task_environment


def test_the_controllers_python_is_this_python() -> None:
    assert _is_this_python(sys.executable)


def test_another_name_for_it_in_the_same_folder_is_this_python(tmp_path) -> None:
    folder = os.path.dirname(sys.executable)
    others = [os.path.join(folder, name) for name in os.listdir(folder)
              if os.path.join(folder, name) != sys.executable and os.path.exists(os.path.join(folder, name))
              and os.path.samefile(os.path.join(folder, name), sys.executable)]
    if not others:
        pytest.skip("the interpreter's folder has no other name for it")
    assert _is_this_python(others[0])


def test_a_link_to_it_from_another_folder_is_not(tmp_path) -> None:
    """A virtual environment is found from the folder of the path run, so a link elsewhere may be another environment."""
    link = tmp_path / "python"
    link.symlink_to(sys.executable)
    assert not _is_this_python(str(link))


def test_a_wrapper_script_is_not(tmp_path) -> None:
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    assert not _is_this_python(str(wrapper))


def test_a_missing_interpreter_is_not(tmp_path) -> None:
    assert not _is_this_python(str(tmp_path / "python3"))


def test_the_task_environment_applies_while_the_code_runs_only(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_HOST", "before.example")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with _task_environment({"ARVADOS_API_HOST": "task.example", "DOCKER_HOST": "unix:///run/task.sock", "RETRIES": 3}):
        assert os.environ["ARVADOS_API_HOST"] == "task.example"
        assert os.environ["DOCKER_HOST"] == "unix:///run/task.sock"
        assert os.environ["RETRIES"] == "3"
    assert os.environ["ARVADOS_API_HOST"] == "before.example"
    assert "DOCKER_HOST" not in os.environ and "RETRIES" not in os.environ
