"""The stage runner of `make test`: counts read from each tool's output, the failure text shown, the total line."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from harness import stage
from harness.stage import Counts

RUNNER = pathlib.Path(stage.__file__)

SANITY_LOG = """\
Running sanity test "action-plugin-docs"
Running sanity test "compile" on Python 3.9
Running sanity test "compile" on Python 3.10
WARNING: Skipping sanity test "compile" on Python 3.14 because it could not be found.
Running sanity test "pylint"
ERROR: Found 1 pylint issue(s) which need to be resolved:
ERROR: plugins/modules/x.py:3:0: unused-import: Unused import os
Running sanity test "yamllint"
ERROR: The 1 sanity test(s) listed below (out of 4) failed. See error output above for details.
pylint
"""

INTEGRATION_LOG = """\
Running arvados_docker_image integration test role
PLAY RECAP *********************************************************************
testhost                   : ok=40   changed=12   unreachable=0    failed=0
Running arvados_docker_image_info integration test role
fatal: [testhost]: FAILED! => {"changed": false, "msg": "images: expected 2, got 1"}
PLAY RECAP *********************************************************************
testhost                   : ok=3    changed=0    unreachable=0    failed=1
ERROR: Command "ansible-playbook arvados_docker_image_info-xyz.yml" returned exit status 2.
"""

PYTEST_FAILED_LOG = """\
tests/faults/test_a.py ..F.s
=================================== FAILURES ===================================
___________________________________ test_b ____________________________________
    assert result.rc == 0
E   assert 2 == 0
=========================== short test summary info ============================
FAILED tests/faults/test_a.py::test_b - assert 2 == 0
=============== 1 failed, 3 passed, 1 skipped, 2 warnings in 41.20s (0:00:41) ===============
"""


@pytest.mark.parametrize(("log", "expected"), [
    ("============================= 434 passed in 13.96s =============================\n"
     "============================= 55 passed in 15.21s ==============================\n",
     Counts(489, 0, "tests")),
    (PYTEST_FAILED_LOG, Counts(3, 1, "tests", "1 skipped")),
    ("==== 2 passed, 1 error, 1 xfailed in 0.50s ====\n", Counts(2, 1, "tests", "1 xfailed")),
    ("collected 0 items\n", None),
])
def test_pytest_counts_add_every_summary_line(log: str, expected: Counts | None) -> None:
    assert stage.pytest_counts(log) == expected


def test_sanity_counts_each_test_run_and_the_listed_failures() -> None:
    assert stage.sanity_counts(SANITY_LOG) == Counts(4, 1, "tests")
    assert stage.sanity_counts('Running sanity test "pep8"\n' * 3) == Counts(3, 0, "tests")


def test_integration_counts_targets_and_the_one_that_stopped_the_run() -> None:
    assert stage.integration_counts(INTEGRATION_LOG) == Counts(1, 1, "targets")
    passing = INTEGRATION_LOG.split("Running arvados_docker_image_info", maxsplit=1)[0]
    assert stage.integration_counts(passing) == Counts(1, 0, "targets")
    listed = "Running a integration test role\nRunning b integration test script\n" \
             "ERROR: The 2 integration test(s) listed below (out of 2) failed. See error output above for details:\n"
    assert stage.integration_counts(listed) == Counts(0, 2, "targets")


def test_lint_summary_is_read_through_its_colours() -> None:
    log = "\x1b[32mPassed\x1b[0m: 0 failure(s), 0 warning(s) in 201 files processed of 222 encountered. Profile 'x'\n"
    counts = stage.stage_counts("lint", log, 0)
    assert counts == Counts(1, 0, "checks", "ansible-lint: 0 failures, 0 warnings in 201 files")
    failed = "Failed: 3 failure(s), 1 warning(s) in 201 files processed of 222 encountered.\n"
    assert stage.stage_counts("lint", failed, 2).failed == 1


def test_molecule_recap_counts_actions_by_state() -> None:
    log = "SCENARIO RECAP\ndefault                   : actions=6  successful=5  disabled=0  skipped=1  missing=0  failed=0\n"
    assert stage.molecule_counts(log) == Counts(5, 0, "actions", "1 skipped")


def test_doc_pages_and_collection_install() -> None:
    log = "ok: ansible-doc -t module arvados.cluster.a\nFAIL: ansible-doc -t lookup arvados.cluster.b\nno EXAMPLES\n"
    assert stage.doc_counts(log) == Counts(1, 1, "pages")
    installed = "Installing 'arvados.cluster:0.1.0' to '/x'\narvados.cluster:0.1.0 was installed successfully\n"
    assert stage.stage_counts("build-collection", installed, 0).text() == "built and installed arvados.cluster:0.1.0"


def test_a_failed_stage_without_counted_failures_counts_one() -> None:
    assert stage.stage_counts("ee", "Traceback ...\n", 1) == Counts(0, 1)
    assert stage.stage_counts("faults", "==== 7 passed in 1.00s ====\n", 2) == Counts(7, 1, "tests", "exit 2")


def test_failure_text_is_the_failing_part_in_full() -> None:
    assert stage.failure_text("faults", "collecting\n" + PYTEST_FAILED_LOG).startswith("=====")
    assert "E   assert 2 == 0" in stage.failure_text("faults", PYTEST_FAILED_LOG)
    sanity = stage.failure_text("sanity", SANITY_LOG)
    assert sanity.startswith("ERROR: Found 1 pylint issue(s)") and "Running sanity test" not in sanity
    assert "unused-import" in sanity and "listed below" in sanity
    integration = stage.failure_text("integration", INTEGRATION_LOG)
    assert integration.startswith("Running arvados_docker_image_info") and "images: expected 2, got 1" in integration
    assert stage.failure_text("ee", "whatever it said\n") == "whatever it said\n"


def test_total_line_counts_all_stages_and_names_the_failed_ones() -> None:
    results = {"units": {"passed": 489, "failed": 0, "seconds": 60.0, "returncode": 0},
               "faults": {"passed": 3, "failed": 1, "seconds": 41.2, "returncode": 2},
               "ee": None}
    line, passed = stage.total_line(results)
    assert line == "make test: 492 passed, 1 failed over 3 stages in 101 s; failed stages: faults, ee (ee did not run)"
    assert not passed
    assert stage.total_line({"units": results["units"]}) == ("make test: 489 passed, 0 failed over 1 stages in 60 s",
                                                             True)


def _runner(log_dir: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUNNER), "--log-dir", str(log_dir), *args],
                          capture_output=True, text=True, check=False)


def test_a_run_prints_one_line_keeps_the_log_and_shows_a_failure_in_full(tmp_path: pathlib.Path) -> None:
    loud = "print('pip progress\\n' * 500); print('==== 5 passed in 0.10s ====')"
    quiet = _runner(tmp_path, "run", "functional", "--", sys.executable, "-c", loud)
    assert quiet.returncode == 0 and quiet.stderr == ""
    [line] = quiet.stdout.splitlines()
    assert line.startswith("functional") and " ok " in line and "5 tests passed" in line
    assert line.endswith(" s  build/logs/functional.log")
    assert (tmp_path / "functional.log").read_text(encoding="utf-8").count("pip progress") == 500
    failing = "import sys; print('setup noise'); print('=== FAILURES ===\\n' + 'line\\n' * 300); sys.exit(1)"
    failed = _runner(tmp_path, "run", "faults", "--", sys.executable, "-c", failing)
    assert failed.returncode == 1
    assert failed.stdout.count("line\n") == 300 and "setup noise" not in failed.stdout
    assert json.loads((tmp_path / "faults.json").read_text(encoding="utf-8"))["failed"] == 1
    total = _runner(tmp_path, "total", "functional", "faults")
    assert total.returncode == 1
    assert total.stdout.startswith("make test: 5 passed, 1 failed over 2 stages in ")
