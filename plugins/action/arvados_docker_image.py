# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Action plugin for arvados.cluster.arvados_docker_image.

A task that would run the module on the controller itself (local connection, no become, no async, and the
host's Python is the one running Ansible) runs the module's code right here, in the task's worker process:
the same validation and the same code, without packing the module and starting another Python for it. Any
other task ships the module as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import typing as t

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

try:
    from ansible_collections.arvados.cluster.plugins.module_utils._arvados import ARVADOS_IMPORT_ERROR
    from ansible_collections.arvados.cluster.plugins.module_utils._image_task import (
        TaskContext,
        TaskFailure,
        argument_spec,
        ensure_image,
    )
    IN_CONTROLLER_IMPORT_ERROR: Exception | None = ARVADOS_IMPORT_ERROR
except ImportError as exc:  # the module, shipped to the host, reports what is missing there
    IN_CONTROLLER_IMPORT_ERROR = exc

display = Display()


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        if self._runs_in_controller(task_vars):
            # -vvv shows how a shipped module runs (EXEC ... AnsiballZ_...); this says where this one ran instead.
            display.vvv(f"RUN IN CONTROLLER {self._task.resolved_action}: local connection and the controller's own Python",
                        host=self._play_context.remote_addr)
            return merge_hash(result, self._run_in_controller(task_vars))
        wrap_async = self._task.async_val
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)  # pylint: disable=protected-access
        return result

    def _runs_in_controller(self, task_vars: dict[str, t.Any]) -> bool:
        """True when shipping the module would only start this same Python again, on this same machine, as this same user."""
        if IN_CONTROLLER_IMPORT_ERROR is not None or self._task.async_val or self._play_context.become:
            return False
        if getattr(self._connection, "transport", None) != "local":
            return False
        host_vars = task_vars.get("ansible_delegated_vars", {}).get(self._task.delegate_to, {}) if self._task.delegate_to else task_vars
        interpreter = host_vars.get("ansible_python_interpreter")
        return interpreter is not None and _is_this_python(str(self._templar.template(interpreter)))

    def _run_in_controller(self, task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        environment: dict[str, t.Any] = {}
        self._compute_environment_string(environment)
        with _task_environment(environment), _sdk_logging_silenced():
            validation = ArgumentSpecValidator(argument_spec()).validate(dict(self._task.args))
            no_log_values = validation._no_log_values  # pylint: disable=protected-access
            if validation.error_messages:
                return remove_values({"failed": True, "msg": self._validation_message(validation)}, no_log_values)
            params = validation.validated_parameters
            warnings: list[str] = []
            context = TaskContext(params=params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff), warn=warnings.append)
            try:
                result = ensure_image(context)
            except TaskFailure as failure:
                result = {"failed": True, "msg": failure.msg}
                if failure.traceback:
                    result["exception"] = failure.traceback
        if warnings:
            result["warnings"] = warnings
        if self._injects_invocation(task_vars):
            result["invocation"] = {"module_args": params}
        return remove_values(result, no_log_values)

    def _injects_invocation(self, task_vars: dict[str, t.Any]) -> bool:
        """Whether a module would add its arguments to the result: always before ansible-core 2.20, then when configured."""
        try:
            return bool(C.config.get_config_value("INJECT_INVOCATION", variables=task_vars))
        except AnsibleError:
            return True

    def _validation_message(self, validation: t.Any) -> str:
        """The message AnsibleModule gives for the same invalid arguments."""
        message = validation.errors.msg
        if isinstance(validation.errors[0], UnsupportedError):
            message = f"Unsupported parameters for ({self._task.resolved_action or self._task.action}) module: {message}"
        return message


def _is_this_python(interpreter: str) -> bool:
    """The same Python binary in the same folder: a virtual environment is found from the folder of the path run."""
    path = os.path.abspath(interpreter)
    try:
        return os.path.dirname(path) == os.path.dirname(sys.executable) and os.path.samefile(path, sys.executable)
    except OSError:
        return False


@contextlib.contextmanager
def _task_environment(environment: t.Mapping[str, t.Any]) -> t.Iterator[None]:
    """The task's `environment` in os.environ while the module's code runs, as the shipped module would see it."""
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update({name: str(value) for name, value in environment.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _sdk_logging_silenced() -> t.Iterator[None]:
    """The SDKs' log lines go to the shipped module's stderr, which Ansible does not show; here they would reach the terminal."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)
