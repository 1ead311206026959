# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The action plugins of the collection's modules: connection options from the variables, and the module's code run
in the controller when the task would only start the controller's own Python again.

A task that would run the module on the controller itself (local connection, no become, no async, and the host's
Python is the one running Ansible) runs the module's code right here, in the task's worker process: the same
validation and the same code, without packing the module and starting another Python for it. Any other task ships
the module as usual. Either way the module gets the arvados_* variables, templated, for the connection options the
task does not set.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import typing as t
from dataclasses import dataclass

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.arvados.cluster.plugins.module_utils._task import Task, TaskContext, run_task
from ansible_collections.arvados.cluster.plugins.plugin_utils._connection import (
    CONNECTION_VARIABLES,
    SOURCE_CONNECTION_VARIABLES,
    connection_values,
)

display = Display()


@dataclass(frozen=True)
class ModuleCode:
    """A module's code as its action plugin runs it: its argument spec and its task; `import_error` when it cannot run here."""

    argument_spec: t.Callable[[], dict[str, t.Any]]
    task: Task
    import_error: BaseException | None = None

    @classmethod
    def unavailable(cls, error: BaseException) -> ModuleCode:
        """Code that does not import in the controller: the module is shipped, and reports what is missing where it runs."""
        def missing(*_args: t.Any) -> t.Any:
            raise error
        return cls(argument_spec=missing, task=missing, import_error=error)


class ControllerAction(ActionBase):
    """Runs a module with its connection options completed from the variables, in the controller when it can."""

    _supports_check_mode = True
    _supports_async = True
    # Set by each module's action plugin.
    module_code: ModuleCode = ModuleCode.unavailable(NotImplementedError("no module code"))
    # Whether the module copies from a source cluster (`source: arvados`, for the task or for entries of `images`), whose
    # connection the arvados_source_* variables give.
    reads_source_cluster = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        module_args = self._module_args(task_vars)
        if self._runs_in_controller(task_vars):
            # -vvv shows how a shipped module runs (EXEC ... AnsiballZ_...); this says where this one ran instead.
            display.vvv(f"RUN IN CONTROLLER {self._task.resolved_action}: local connection and the controller's own Python",
                        host=self._play_context.remote_addr)
            return merge_hash(result, self._run_in_controller(module_args, task_vars))
        wrap_async = self._task.async_val
        result = merge_hash(result, self._execute_module(module_args=module_args, task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)  # pylint: disable=protected-access
        return result

    def _module_args(self, task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """The task's arguments, with the connection options it does not set taken from the arvados_* variables."""
        module_args = dict(self._task.args)
        option_variables = dict(CONNECTION_VARIABLES)
        if self.reads_source_cluster and module_args.get("source") == "arvados":
            option_variables.update(SOURCE_CONNECTION_VARIABLES)
        if self.reads_source_cluster and isinstance(module_args.get("images"), list):
            module_args["images"] = [self._with_source_connection(image, task_vars) for image in module_args["images"]]
        values = connection_values(module_args, task_vars, self._templar, option_variables)
        from_variables = sorted(option for option in values if module_args.get(option) is None)
        if from_variables:
            # Names only: which variables gave the connection, never their values.
            display.vvv(f"ARVADOS CONNECTION from the variables {', '.join(option_variables[option] for option in from_variables)}",
                        host=self._play_context.remote_addr)
        module_args.update(values)
        return module_args

    def _with_source_connection(self, image: t.Any, task_vars: dict[str, t.Any]) -> t.Any:
        """An entry of `images` copied from a source cluster, its connection completed from the arvados_source_* variables."""
        if not isinstance(image, dict) or image.get("source") != "arvados":
            return image
        return {**image, **connection_values(image, task_vars, self._templar, SOURCE_CONNECTION_VARIABLES)}

    def _runs_in_controller(self, task_vars: dict[str, t.Any]) -> bool:
        """True when shipping the module would only start this same Python again, on this same machine, as this same user."""
        if self.module_code.import_error is not None or self._task.async_val or self._play_context.become:
            return False
        if getattr(self._connection, "transport", None) != "local":
            return False
        host_vars = task_vars.get("ansible_delegated_vars", {}).get(self._task.delegate_to, {}) if self._task.delegate_to else task_vars
        interpreter = host_vars.get("ansible_python_interpreter")
        return interpreter is not None and _is_this_python(str(self._templar.template(interpreter)))

    def _run_in_controller(self, module_args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        environment: dict[str, t.Any] = {}
        self._compute_environment_string(environment)
        with _task_environment(environment), _sdk_logging_silenced():
            validation = ArgumentSpecValidator(self.module_code.argument_spec()).validate(module_args)
            no_log_values = validation._no_log_values  # pylint: disable=protected-access
            if validation.error_messages:
                return remove_values({"failed": True, "msg": self._validation_message(validation)}, no_log_values)
            params = validation.validated_parameters
            warnings: list[str] = []
            context = TaskContext(params=params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff), warn=warnings.append,
                                  run_command=run_command)
            result = run_task(self.module_code.task, context)
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


def run_command(args: t.Sequence[str], data: str) -> tuple[int, str, str]:
    """A program run in the controller as AnsibleModule.run_command runs it where the module is shipped (the contract of
    `_task.RunCommand`): no shell, `data` on stdin as given, text out; OSError when it cannot start."""
    completed = subprocess.run(list(args), input=data.encode("utf-8"), capture_output=True, check=False)
    return (completed.returncode, completed.stdout.decode("utf-8", errors="replace"),
            completed.stderr.decode("utf-8", errors="replace"))


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
