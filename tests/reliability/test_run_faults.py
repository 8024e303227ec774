"""Cohort runs under faults, with real processes: two runs on one folder, parts, dying workers, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from paraspinal.batch import finished_cases
from tests.batch_support import write_cohort
from tests.reliability.support import alive, children, one_error_line, run_cli, start_batch_driver, start_cli

FAST = ["--no-qc", "--no-report", "-q"]
SLOW = ["--no-report", "-q"]  # with QC images: about 1.5 s a case, so a run is still busy when the next starts


def _wait_for(condition, *, timeout_s: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        assert proc is None or proc.poll() is None, f"process ended early: {proc.communicate()}"
        time.sleep(0.05)


def _table_cases(out: Path) -> set[str]:
    return set(pd.read_parquet(out / "measurements.parquet")["case_id"])


def _cases_csv(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "cases.csv", keep_default_na=False).set_index("case_id")


def _complete(out: Path, ids: list[str]) -> None:
    """Every case finished (manifest and every file it lists), in the cohort table and listed ok."""
    assert finished_cases(out) == set(ids)
    assert _table_cases(out) == set(ids)
    assert set(_cases_csv(out).query("status == 'ok'").index) == set(ids)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".paraspinal"]


@pytest.mark.slow
def test_a_second_run_on_a_busy_folder_is_refused_and_the_first_stays_complete(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 16)
    out = tmp_path / "out"
    first = start_cli(["run", tmp_path / "in", "-o", out, *SLOW])
    _wait_for(lambda: len(finished_cases(out)) >= 1, proc=first)
    second = run_cli(["run", tmp_path / "in", "-o", out, *FAST])
    assert second.returncode == 1
    line = one_error_line(second.stderr)
    assert line.startswith(f"paraspinal: error: {out}: output folder is in use by a paraspinal run (host ")
    assert f", pid {first.pid}, since " in line and line.endswith("wait for it to finish, or pass --wait")
    assert first.wait(timeout=300) == 0, first.communicate()
    _complete(out, ids)


@pytest.mark.slow
def test_wait_runs_after_the_holder_and_a_resume_after_both_finds_everything_complete(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 10)
    out = tmp_path / "out"
    first = start_cli(["run", tmp_path / "in", "-o", out, *SLOW])
    _wait_for(lambda: len(finished_cases(out)) >= 1, proc=first)
    second = start_cli(["run", tmp_path / "in", "-o", out, "--no-resume", "--no-qc", "--no-report", "--wait"])
    assert first.wait(timeout=300) == 0
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert f"waiting for the paraspinal run holding {out} (host " in err
    stamps = {c: (out / c / f"{c}_manifest.json").stat().st_mtime_ns for c in ids}
    resumed = run_cli(["run", tmp_path / "in", "-o", out, *FAST])
    assert resumed.returncode == 0, resumed.stderr
    assert {c: (out / c / f"{c}_manifest.json").stat().st_mtime_ns for c in ids} == stamps  # nothing redone
    _complete(out, ids)


@pytest.mark.slow
def test_parts_side_by_side_give_a_cohort_table_with_every_case(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 24)
    out = tmp_path / "out"
    split = ["--num-parts", "3", "--part-id"]
    parts = [start_cli(["run", tmp_path / "in", "-o", out, *split, k, *SLOW]) for k in "012"]
    _wait_for(lambda: len(finished_cases(out)) >= 1)
    twin = start_cli(["run", tmp_path / "in", "-o", out, *split, "1", *FAST])
    other_split = start_cli(["run", tmp_path / "in", "-o", out, "--num-parts", "2", "--part-id", "0", *FAST])
    whole = start_cli(["run", tmp_path / "in", "-o", out, *FAST])
    refusals = {
        name: proc.communicate(timeout=120) for name, proc in (("twin", twin), ("other", other_split), ("whole", whole))
    }
    for proc in parts:
        assert proc.wait(timeout=300) == 0, proc.communicate()
    assert twin.returncode == 1 and one_error_line(refusals["twin"][1]).endswith("this part is already running")
    assert other_split.returncode == 1
    assert one_error_line(refusals["other"][1]).endswith("use the same --num-parts")
    assert whole.returncode == 1 and ", part " in one_error_line(refusals["whole"][1])
    _complete(out, ids)  # whichever part ended last wrote the cohort files from every finished case
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(c["case_id"] for c in manifest["cases"]) == ids and manifest["n_failed"] == 0


@pytest.mark.slow
def test_collect_rebuilds_the_cohort_files_from_disk(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 4)
    out = tmp_path / "out"
    for k in "01":
        assert run_cli(["run", tmp_path / "in", "-o", out, "--num-parts", "2", "--part-id", k, *FAST]).returncode == 0
    before = pd.read_parquet(out / "measurements.parquet")
    for name in ("measurements.parquet", "measurements.csv", "cases.csv", "summary.csv", "manifest.json"):
        (out / name).unlink()
    done = run_cli(["collect", out])
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out / "measurements.parquet"), before)
    _complete(out, ids)
    missing = run_cli(["collect", tmp_path / "nowhere"])
    assert missing.returncode == 1
    assert one_error_line(missing.stderr) == f"paraspinal: error: {tmp_path / 'nowhere'}: output folder not found"


@pytest.mark.slow
def test_a_case_folder_missing_a_file_of_its_manifest_is_redone(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 3)
    out = tmp_path / "out"
    assert run_cli(["run", tmp_path / "in", "-o", out, *FAST]).returncode == 0
    (out / "C001" / "C001_measurements.parquet").unlink()  # a damaged folder: its manifest says otherwise
    assert finished_cases(out) == {"C000", "C002"}
    resumed = run_cli(["run", tmp_path / "in", "-o", out, *FAST])
    assert resumed.returncode == 0, resumed.stderr
    _complete(out, ids)


@pytest.mark.slow
def test_part_files_left_by_a_killed_cohort_writer_are_removed(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert run_cli(["run", tmp_path / "in", "-o", out, *FAST]).returncode == 0
    # what AtomicOutputs leaves when the process dies between writing and renaming: hidden, ending .part
    left = [out / ".measurements.parquet.x1y2z3.part", out / ".report.html.a9b8c7.part"]
    for path in left:
        path.write_bytes(b"half a file")
    assert run_cli(["run", tmp_path / "in", "-o", out, *FAST]).returncode == 0
    assert not [p for p in left if p.exists()]
    _complete(out, ids)


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_of_a_case_costs_nothing(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 6, with_masks=False)
    out = tmp_path / "out"
    driver = start_batch_driver(tmp_path / "in", out, factory="SlowFactory(1.5)", workers=2)
    _wait_for(lambda: len(children(driver.pid)) >= 2, proc=driver)
    time.sleep(3.0)  # the workers have loaded and are inside a case
    victim = max(children(driver.pid))
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr
    assert json.loads(stdout) == {c: ["ok", None] for c in ids}
    assert not alive(victim)
    _complete(out, ids)


@pytest.mark.slow
def test_a_case_that_kills_every_worker_fails_after_three_attempts_and_the_others_finish(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 5, with_masks=False)
    out = tmp_path / "out"
    driver = start_batch_driver(tmp_path / "in", out, factory="PoisonFactory('C002_water')", workers=2)
    stdout, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr
    statuses = json.loads(stdout)
    assert statuses.pop("C002") == [
        "failed",
        "worker process killed by SIGKILL (often the system running out of memory) on each of 3 attempts at this case",
    ]
    assert statuses == {c: ["ok", None] for c in ids if c != "C002"}
    cases = _cases_csv(out)
    assert cases.loc["C002", "status"] == "failed" and "killed by SIGKILL" in cases.loc["C002", "error"]
    assert _table_cases(out) == set(ids) - {"C002"}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_driver_leaves_no_worker_running_or_writing(tmp_path: Path, signum: int) -> None:
    ids = write_cohort(tmp_path / "in", 12)
    out = tmp_path / "out"
    driver = start_cli(["run", tmp_path / "in", "-o", out, "--workers", "2", "--no-report"])
    _wait_for(lambda: len(children(driver.pid)) >= 2 and len(finished_cases(out)) >= 1, proc=driver)
    workers = children(driver.pid)
    os.kill(driver.pid, signum)
    driver.wait(timeout=60)
    assert driver.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 143)
    _wait_for(lambda: not any(alive(pid) for pid in workers), timeout_s=15)
    listing = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    time.sleep(2.0)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == listing  # nobody is writing any more
    resumed = run_cli(["run", tmp_path / "in", "-o", out, "--no-report", "-q"])
    assert resumed.returncode == 0, resumed.stderr
    _complete(out, ids)


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_always_exits_130_and_leaves_a_resumable_folder(tmp_path: Path, workers: str) -> None:
    ids = write_cohort(tmp_path / "in", 8)
    out = tmp_path / "out"
    for delay_s in (0.2, 1.5, 3.0, 6.0):  # during start-up, the first cases, later cases, the cohort files
        proc = start_cli(["run", tmp_path / "in", "-o", out, "--workers", workers, "--no-resume", "--no-report"])
        time.sleep(delay_s)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, (delay_s, proc.returncode, err)
        assert "Traceback" not in err and err.strip().endswith("paraspinal: interrupted"), err
    resumed = run_cli(["run", tmp_path / "in", "-o", out, "--no-report", "-q"])
    assert resumed.returncode == 0, resumed.stderr
    _complete(out, ids)


@pytest.mark.slow
def test_bad_rows_and_unmatched_files_fail_alone_and_the_rest_run(tmp_path: Path) -> None:
    write_cohort(tmp_path / "in", 3)
    (tmp_path / "in" / "X_water.nii.gz").write_bytes((tmp_path / "in" / "C000_water.nii.gz").read_bytes())
    folder = run_cli(["run", tmp_path / "in", "-o", tmp_path / "out_folder", *FAST])
    assert folder.returncode == 3, folder.stderr
    assert "paraspinal: error: X: cannot match the case's files by name: case X has a water image but no fat" in (
        folder.stderr
    )
    _complete_but(tmp_path / "out_folder", ok={"C000", "C001", "C002"}, failed={"X"})
    csv = tmp_path / "cases.csv"
    csv.write_text(
        "case_id,water,fat,labels\n"
        "A,in/C000_water.nii.gz,in/C000_fat.nii.gz,in/C000_dseg.nii.gz\n"
        "B,in/C001_water.nii.gz,,in/C001_dseg.nii.gz\n"
        ",in/C002_water.nii.gz,in/C002_fat.nii.gz,\n"
        "D,in/C002_water.nii.gz,in/C002_fat.nii.gz,in/C002_dseg.nii.gz\n"
        "D,in/C001_water.nii.gz,in/C001_fat.nii.gz,in/C001_dseg.nii.gz\n"
    )
    rows = run_cli(["run", csv, "-o", tmp_path / "out_csv", *FAST])
    assert rows.returncode == 3, rows.stderr
    errors = {
        line.split(": ", 3)[2]: line for line in rows.stderr.splitlines() if line.startswith("paraspinal: error:")
    }
    assert errors["B"].endswith(f"{csv}: case B: a Dixon case needs both a water and a fat image")
    assert errors["cases.csv:row 3"].endswith(f"{csv}: row 3 has no case_id")
    assert errors["D"].endswith(f"{csv}: case id D repeated in rows 4, 5; give each case one row")
    _complete_but(tmp_path / "out_csv", ok={"A"}, failed={"B", "cases.csv:row 3", "D"})
    unreadable = tmp_path / "broken.csv"
    unreadable.write_text("case_id,colour\nA,red\n")
    whole = run_cli(["run", unreadable, "-o", tmp_path / "out_broken", *FAST])
    assert whole.returncode == 1 and "unknown: colour" in one_error_line(whole.stderr)


def _complete_but(out: Path, *, ok: set[str], failed: set[str]) -> None:
    cases = _cases_csv(out)
    assert set(cases.index) == ok | failed
    assert set(cases.query("status == 'ok'").index) == ok and finished_cases(out) == ok
    assert set(cases.query("status == 'failed'").index) == failed
    assert all(cases.loc[sorted(failed), "error"].str.len() > 0)
    assert _table_cases(out) == ok
