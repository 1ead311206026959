# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Writes each task's result as one JSON line to the file named by ARVADOS_CLUSTER_TEST_RESULTS (fault tests only)."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: result_file
type: aggregate
short_description: Write task results to a file, for the fault tests
description:
  - Appends one JSON line per finished task to the file that E(ARVADOS_CLUSTER_TEST_RESULTS) names.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "result_file"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, result, status: str) -> None:
        path = os.environ.get("ARVADOS_CLUSTER_TEST_RESULTS")
        if not path:
            return
        record = {"task": result.task_name or result._task.get_name(), "status": status, "result": result._result}
        with open(path, "a", encoding="utf-8") as results:
            results.write(json.dumps(record, default=str) + "\n")

    def v2_runner_on_ok(self, result) -> None:
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._write(result, "failed")

    def v2_runner_on_skipped(self, result) -> None:
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._write(result, "unreachable")
