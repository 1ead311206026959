"""Runs one stage of `make test` quietly: its output to build/logs/<stage>.log, one line on the terminal.

The line says what ran, the counts read from the log (tests, targets or pages where the stage has them)
and the seconds it took. A failing stage also prints its failure text in full, then exits non-zero.
`total` reads the stages' results and prints the run's one total line. Standard library only: it runs
before the virtual environments exist.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import re
import subprocess
import sys
import time
import typing as t

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PYTEST_SUMMARY = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+) in [0-9.]+s\b.*$", re.MULTILINE)
PYTEST_FAILURES = re.compile(r"^=+ (?:FAILURES|ERRORS) =+$", re.MULTILINE)
SANITY_RUN = re.compile(r"^Running sanity test ", re.MULTILINE)
SANITY_FAILED = re.compile(r"The (\d+) sanity test\(s\) listed below \(out of \d+\) failed")
INTEGRATION_RUN = re.compile(r"^Running (\S+) integration test (?:role|script)$", re.MULTILINE)
INTEGRATION_FAILED = re.compile(r"The (\d+) integration test\(s\) listed below \(out of \d+\) failed")
LINT_SUMMARY = re.compile(r"^(?:Passed|Failed): (\d+) failure\(s\), (\d+) warning\(s\).*? in (\d+) files processed",
                          re.MULTILINE)
DOC_PAGE = re.compile(r"^(ok|FAIL): ansible-doc ", re.MULTILINE)
MOLECULE_RECAP = re.compile(r"^\S+\s*: actions=\d+((?:\s+[a-z]+=\d+)+)\s*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Counts:
    """What one stage counted: passed and failed items of one kind, and a note."""

    passed: int
    failed: int
    unit: str = "checks"
    note: str = ""

    def text(self) -> str:
        if self.unit == "checks" and self.passed + self.failed == 1:
            return self.note or ("done" if self.passed else "failed")
        words = f"{self.passed} {self.unit} passed"
        if self.failed:
            words += f", {self.failed} failed"
        return f"{words} ({self.note})" if self.note else words


def pytest_counts(log: str) -> Counts | None:
    """The sum of every pytest summary line in the log (ansible-test units runs pytest once per Python)."""
    totals: dict[str, int] = {}
    for match in PYTEST_SUMMARY.finditer(log):
        for number, word in re.findall(r"(\d+) ([a-z]+)", match.group(1)):
            key = {"error": "errors", "warning": "warnings"}.get(word, word)
            totals[key] = totals.get(key, 0) + int(number)
    if not totals:
        return None
    note = ", ".join(f"{totals[key]} {key}" for key in ("skipped", "xfailed", "deselected") if totals.get(key))
    return Counts(totals.get("passed", 0) + totals.get("xpassed", 0),
                  totals.get("failed", 0) + totals.get("errors", 0), "tests", note)


def sanity_counts(log: str) -> Counts | None:
    """Sanity tests run ('compile' and 'import' once per Python) and those ansible-test listed as failed."""
    run = len(SANITY_RUN.findall(log))
    failed = sum(int(number) for number in SANITY_FAILED.findall(log))
    return Counts(run - failed, failed, "tests") if run else None


def integration_counts(log: str) -> Counts | None:
    """Integration targets run; ansible-test stops at the first failed one unless told to go on."""
    run = len(INTEGRATION_RUN.findall(log))
    if not run:
        return None
    listed = INTEGRATION_FAILED.search(log)
    failed = int(listed.group(1)) if listed else int("ERROR:" in log)
    return Counts(run - failed, failed, "targets")


def lint_counts(log: str) -> Counts | None:
    """ansible-lint's summary: the stage is one check, with its failures and files in the note."""
    match = LINT_SUMMARY.search(log)
    if not match:
        return None
    failures, warnings, files = (int(group) for group in match.groups())
    note = f"ansible-lint: {failures} failures, {warnings} warnings in {files} files"
    return Counts(int(not failures), int(bool(failures)), "checks", note)


def doc_counts(log: str) -> Counts | None:
    """ansible-doc pages rendered (tests/harness/doc_pages.py prints one line a page)."""
    pages = DOC_PAGE.findall(log)
    return Counts(pages.count("ok"), pages.count("FAIL"), "pages") if pages else None


def molecule_counts(log: str) -> Counts | None:
    """Molecule's scenario recap: actions successful and failed, the other states in the note."""
    states: dict[str, int] = {}
    for match in MOLECULE_RECAP.finditer(log):
        for state, number in re.findall(r"([a-z]+)=(\d+)", match.group(1)):
            states[state] = states.get(state, 0) + int(number)
    if not states:
        return None
    note = ", ".join(f"{number} {state}" for state, number in states.items()
                     if number and state not in ("successful", "failed"))
    return Counts(states.get("successful", 0), states.get("failed", 0), "actions", note)


def collection_counts(log: str) -> Counts | None:
    """The collection that ansible-galaxy built and installed."""
    match = re.search(r"^(\S+) was installed successfully$", log, re.MULTILINE)
    return Counts(1, 0, "checks", f"built and installed {match.group(1)}") if match else None


def ee_counts(log: str) -> Counts | None:
    """ansible-builder's build context, written when it says complete."""
    found = "Complete! The build context can be found at" in log
    return Counts(1, 0, "checks", "requirements introspected, build context written") if found else None


PARSERS: dict[str, t.Callable[[str], Counts | None]] = {
    "sanity": sanity_counts, "units": pytest_counts, "functional": pytest_counts, "faults": pytest_counts,
    "integration": integration_counts, "integration-core220": integration_counts, "integration-core219": integration_counts,
    "lint": lint_counts, "docs": doc_counts, "molecule": molecule_counts,
    "build-collection": collection_counts, "ee": ee_counts,
}


def stage_counts(stage: str, log: str, returncode: int) -> Counts:
    """The stage's counts; a stage that failed without a counted failure counts as one failed check."""
    counts = PARSERS.get(stage, lambda _log: None)(ANSI.sub("", log))
    if counts is None:
        return Counts(int(returncode == 0), int(returncode != 0))
    if returncode != 0 and counts.failed == 0:
        return dataclasses.replace(counts, failed=1, note=f"{counts.note}; exit {returncode}".lstrip("; "))
    return counts


def failure_text(stage: str, log: str) -> str:
    """The part of a failed stage's log that tells what failed, in full: the whole log when unsure."""
    if stage in ("units", "functional", "faults"):
        start = PYTEST_FAILURES.search(log)
        return log[start.start():] if start else log
    if stage == "sanity":
        start = log.find("ERROR:")
        kept = [line for line in log[max(start, 0):].splitlines() if not SANITY_RUN.match(line)]
        return "\n".join(kept)
    if stage.startswith("integration"):
        targets = list(INTEGRATION_RUN.finditer(log))
        return log[targets[-1].start():] if targets else log
    return log


def stage_line(stage: str, counts: Counts, seconds: float, log_path: str, returncode: int) -> str:
    status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
    return f"{stage:<17} {status:<6} {counts.text():<48} {seconds:6.1f} s  {log_path}"


def run_stage(stage: str, command: list[str], log_dir: pathlib.Path, shown_dir: str) -> int:
    """Runs the command with its output in the stage's log; prints the stage line (and failure text)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{stage}.log"
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log_file:
        returncode = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                    check=False).returncode
    seconds = time.monotonic() - started
    log = log_path.read_text(encoding="utf-8", errors="replace")
    counts = stage_counts(stage, log, returncode)
    result = dict(dataclasses.asdict(counts), stage=stage, seconds=round(seconds, 1), returncode=returncode)
    (log_dir / f"{stage}.json").write_text(json.dumps(result), encoding="utf-8")
    shown = f"{shown_dir}/{stage}.log"
    print(stage_line(stage, counts, seconds, shown, returncode), flush=True)
    if returncode != 0:
        print(f"---- {stage} failed; what failed ({shown} holds the whole output):", flush=True)
        print(failure_text(stage, log).rstrip("\n"), flush=True)
        print(f"---- end of {stage}", flush=True)
    return returncode


def total_line(results: dict[str, dict[str, t.Any] | None]) -> tuple[str, bool]:
    """The run's one total line over the stages' results (None: the stage left no result), and whether all passed."""
    passed = sum(result["passed"] for result in results.values() if result)
    failed = sum(result["failed"] for result in results.values() if result)
    seconds = sum(result["seconds"] for result in results.values() if result)
    failing = [stage for stage, result in results.items() if not result or result["returncode"] != 0]
    missing = [stage for stage, result in results.items() if not result]
    line = f"make test: {passed} passed, {failed} failed over {len(results)} stages in {seconds:.0f} s"
    if failing:
        line += f"; failed stages: {', '.join(failing)}"
    if missing:
        line += f" ({', '.join(missing)} did not run)"
    return line, not failing


def read_results(log_dir: pathlib.Path, stages: list[str]) -> dict[str, dict[str, t.Any] | None]:
    results: dict[str, dict[str, t.Any] | None] = {}
    for stage in stages:
        path = log_dir / f"{stage}.json"
        results[stage] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log-dir", type=pathlib.Path, required=True)
    parser.add_argument("--shown-dir", default="build/logs", help="the log folder as the stage line names it")
    subparsers = parser.add_subparsers(dest="action", required=True)
    run = subparsers.add_parser("run", help="run one stage's command")
    run.add_argument("stage")
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    forget = subparsers.add_parser("forget", help="remove the stages' results before a run")
    forget.add_argument("stages", nargs="+")
    total = subparsers.add_parser("total", help="print the total line over the stages' results")
    total.add_argument("stages", nargs="+")
    args = parser.parse_args()
    if args.action == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        sys.exit(run_stage(args.stage, command, args.log_dir, args.shown_dir))
    if args.action == "forget":
        for stage in args.stages:
            (args.log_dir / f"{stage}.json").unlink(missing_ok=True)
        return
    line, passed = total_line(read_results(args.log_dir, args.stages))
    print(line)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
