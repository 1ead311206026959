# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""What a module's run needs from whoever runs it, and the one way its outcome becomes a result.

A module's code runs either shipped (AnsiballZ, `run_module`) or in the controller's worker (the action plugin,
`run_task`); both go through `run_task`, so both report the same result and the same failures.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.arvados.cluster.plugins.module_utils._errors import failure_of


# Runs a program (argument list, no shell) with `data` on its stdin exactly as given: (exit status, stdout, stderr) as
# text; raises OSError when the program cannot start. AnsibleModule.run_command where the module is shipped.
RunCommand = t.Callable[[t.Sequence[str], str], t.Tuple[int, str, str]]


@dataclass(frozen=True)
class TaskContext:
    """Validated options, the task's modes, where warnings go, and how a program runs (None: no program runs)."""

    params: t.Mapping[str, t.Any]
    check_mode: bool
    diff: bool
    warn: t.Callable[[str], None]
    run_command: RunCommand | None = None


Task = t.Callable[[TaskContext], t.Dict[str, t.Any]]


def run_task(task: Task, context: TaskContext) -> dict[str, t.Any]:
    """The task's result, or its failure as a result (`failed`, `msg`, and `exception` for a bug)."""
    try:
        return task(context)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        return failure_of(exc).as_result()


def _module_command(module: t.Any, args: t.Sequence[str], data: str) -> tuple[int, str, str]:
    rc, stdout, stderr = module.run_command(list(args), data=data, binary_data=True, handle_exceptions=False)
    return rc, stdout, stderr


def run_module(module: t.Any, task: Task) -> None:
    """Run `task` for an AnsibleModule and exit with its result."""
    context = TaskContext(params=module.params, check_mode=module.check_mode,
                          diff=module._diff, warn=module.warn,  # pylint: disable=protected-access
                          run_command=lambda args, data: _module_command(module, args, data))
    result = run_task(task, context)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
