"""Cohort runs: resume after kill -9, failure isolation, parts, local workers and Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from paraspinal.backends.catalog import Models
from paraspinal.batch import BatchOptions, Ledger, finished_cases, run_batch, select_part
from paraspinal.cli.main import main
from paraspinal.pipeline.discovery import discover_cases, read_cases_csv
from paraspinal.pipeline.options import RunOptions
from tests.batch_support import CountingFactory, write_cohort

FAST = RunOptions(qc=False, report=False)


def _cohort_table(out: Path) -> pd.DataFrame:
    table = pd.read_parquet(out / "measurements.parquet")
    return table.sort_values(
        ["case_id", "structure", "side", "scope", "level", "slice", "metric", "method"], na_position="first"
    ).reset_index(drop=True)


def test_select_part_covers_every_case_exactly_once() -> None:
    ids = [f"P{i:04d}" for i in range(103)][::-1]  # input order must not matter
    parts = [select_part(ids, num_parts=7, part_id=k) for k in range(7)]
    flat = [c for part in parts for c in part]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match=r"part_id must be in 0\.\.6"):
        select_part(ids, num_parts=7, part_id=7)


def test_ledger_reconciles_with_disk(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.register(["a", "b", "c"])
        ledger.mark_running("a")
        ledger.mark_done("a", seconds=1.0)
        ledger.mark_running("b")  # killed while running
        ledger.mark_failed("c", error="boom\nsecond line", seconds=0.1)
        ledger.reconcile(finished={"a"})
        assert ledger.cases_with("done") == ["a"]
        assert ledger.cases_with("pending") == ["b"]
        assert ledger.failures() == {"c": "boom second line"}
        ledger.reconcile(finished=set())  # a's folder vanished: redo it
        assert ledger.status("a") == "pending"


def test_failure_isolation_cli_exit_3_and_ledger(tmp_path: Path, capsys) -> None:
    ids = write_cohort(tmp_path / "in", 5, corrupt=(2,))
    out = tmp_path / "out"
    code = main(["run", str(tmp_path / "in"), "-o", str(out), "--no-qc", "--no-report", "-q"])
    err = capsys.readouterr().err
    assert code == 3
    assert "C002: " in err and "cannot read NIfTI" in err
    assert finished_cases(out) == set(ids) - {"C002"}
    with Ledger(out / "ledger.sqlite") as ledger:
        assert ledger.counts().done == 4 and list(ledger.failures()) == ["C002"]
    cases = pd.read_csv(out / "cases.csv").set_index("case_id")
    assert cases.loc["C002", "status"] == "failed" and "cannot read NIfTI" in cases.loc["C002", "error"]
    assert set(_cohort_table(out).case_id) == set(ids) - {"C002"}
    assert not (out / "C002").exists()


def test_resume_after_kill_9_skips_finished_cases_and_redoes_none(tmp_path: Path) -> None:
    ids = write_cohort(tmp_path / "in", 8)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "paraspinal", "run", str(tmp_path / "in"), "-o", str(out), "-q"]
    proc = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(finished_cases(out)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = finished_cases(out)
    assert 3 <= len(before) < len(ids), "the kill must land mid-run"
    stamps = {c: (out / c / f"{c}_manifest.json").stat().st_mtime_ns for c in before}
    assert main(["run", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    assert finished_cases(out) == set(ids)
    assert {c: (out / c / f"{c}_manifest.json").stat().st_mtime_ns for c in before} == stamps  # none redone
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".paraspinal"], "no half-written case"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(c["case_id"] for c in manifest["cases"]) == ids
    assert set(_cohort_table(out).case_id) == set(ids)


def test_parts_together_equal_one_run(tmp_path: Path) -> None:
    write_cohort(tmp_path / "in", 5)
    cases = discover_cases([tmp_path / "in"]).cases
    whole, split = tmp_path / "whole", tmp_path / "split"
    run_batch(cases, options=FAST, out_dir=whole)
    seen = []
    for part_id in range(2):
        result = run_batch(cases, options=FAST, out_dir=split, batch=BatchOptions(num_parts=2, part_id=part_id))
        seen += [c.case_id for c in result.cases]
    assert sorted(seen) == sorted(c.case_id for c in cases)
    assert (split / "ledger.part0of2.sqlite").exists() and (split / "ledger.part1of2.sqlite").exists()
    tables = [pd.read_parquet(split / c / f"{c}_measurements.parquet") for c in seen]
    merged = pd.concat(tables).sort_values(list(_cohort_table(whole).columns[:8]), na_position="first")
    pd.testing.assert_frame_equal(
        merged.reset_index(drop=True)[["case_id", "metric", "value"]]
        .sort_values(["case_id", "metric", "value"])
        .reset_index(drop=True),
        _cohort_table(whole)[["case_id", "metric", "value"]]
        .sort_values(["case_id", "metric", "value"])
        .reset_index(drop=True),
    )


def test_two_local_workers_load_the_model_once_each_and_match_one_worker(tmp_path: Path) -> None:
    write_cohort(tmp_path / "in", 6, with_masks=False)
    cases = discover_cases([tmp_path / "in"]).cases
    markers = tmp_path / "loads"
    one = run_batch(
        cases, options=FAST, out_dir=tmp_path / "one", models=Models(muscle=CountingFactory(str(markers / "1")))
    )
    two = run_batch(
        cases,
        options=FAST,
        out_dir=tmp_path / "two",
        batch=BatchOptions(workers=2),
        models=Models(muscle=CountingFactory(str(markers / "2"))),
    )
    assert one.n_ok == two.n_ok == 6
    assert len(list((markers / "1").iterdir())) == 1  # the driver's model serves its own cases
    assert len(list((markers / "2").iterdir())) == 2  # one per worker; the driver loads none
    pd.testing.assert_frame_equal(_cohort_table(tmp_path / "one"), _cohort_table(tmp_path / "two"))


def test_cases_csv_input(tmp_path: Path) -> None:
    write_cohort(tmp_path / "in", 2)
    csv = tmp_path / "cases.csv"
    csv.write_text(
        "case_id,water,fat,labels\nA,in/C000_water.nii.gz,in/C000_fat.nii.gz,in/C000_dseg.nii.gz\n"
        "B,in/C001_water.nii.gz,in/C001_fat.nii.gz,in/C001_dseg.nii.gz\n"
    )
    cases = read_cases_csv(csv).cases
    assert [c.case_id for c in cases] == ["A", "B"] and cases[0].water == tmp_path / "in" / "C000_water.nii.gz"
    assert main(["run", str(csv), "-o", str(tmp_path / "out"), "--no-qc", "--no-report", "-q"]) == 0
    assert finished_cases(tmp_path / "out") == {"A", "B"}
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,water\nA,x_water.nii.gz\n")
    assert read_cases_csv(bad).failed == (("A", f"{bad}: case A: a Dixon case needs both a water and a fat image"),)


def test_dask_local_cluster_gives_the_same_tables_as_local_run(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    write_cohort(tmp_path / "in", 4, with_masks=False)
    cases = discover_cases([tmp_path / "in"]).cases
    local = run_batch(
        cases, options=FAST, out_dir=tmp_path / "local", models=Models(muscle=CountingFactory(str(tmp_path / "m")))
    )
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = run_batch(
            cases,
            options=FAST,
            out_dir=tmp_path / "dask",
            batch=BatchOptions(scheduler=cluster.scheduler_address),
            models=Models(muscle=CountingFactory(str(tmp_path / "m2"))),
        )
    assert local.n_ok == on_dask.n_ok == 4
    pd.testing.assert_frame_equal(_cohort_table(tmp_path / "local"), _cohort_table(tmp_path / "dask"))
    assert len(list((tmp_path / "m2").iterdir())) == 2  # one per Dask worker; the driver loads none


def test_real_dask_scheduler_and_worker_processes_on_loopback(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    write_cohort(tmp_path / "in", 3, corrupt=(1,))
    scheduler_file = tmp_path / "scheduler.json"
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen(
        [*dask_cli, "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                "--scheduler-file",
                str(scheduler_file),
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        address = json.loads(scheduler_file.read_text(encoding="utf-8"))["address"]
        assert address.startswith("tcp://127.0.0.1:")
        out = tmp_path / "out"
        code = main(
            ["run", str(tmp_path / "in"), "-o", str(out), "--scheduler", address, "--no-qc", "--no-report", "-q"]
        )
        assert code == 3
        assert finished_cases(out) == {"C000", "C002"}
        with Ledger(out / "ledger.sqlite") as ledger:
            assert list(ledger.failures()) == ["C001"]
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


def test_relative_output_folder_with_a_cohort(tmp_path: Path, monkeypatch) -> None:
    write_cohort(tmp_path / "in", 2)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "in", "-o", "rel-out", "--no-qc", "-q"]) == 0
    assert (tmp_path / "rel-out" / "report.html").is_file()
    assert (tmp_path / "rel-out" / "distributions.png").is_file()


def test_local_workers_share_the_cores_between_their_model_runtimes() -> None:
    from paraspinal.backends.catalog import BackendFactory, BackendOptions
    from paraspinal.batch.runner import worker_models

    default = worker_models(Models(), workers=2, cpu_count=8)
    muscle, spine = default.source("muscle"), default.source("spine")
    assert isinstance(muscle, BackendFactory) and muscle.name == "unet_onnx" and muscle.options.threads == 4
    assert isinstance(spine, BackendFactory) and spine.role == "spine" and spine.options.threads == 4
    assert worker_models(Models(), workers=4, cpu_count=2).source("muscle").options.threads == 1  # type: ignore[union-attr]
    chosen = BackendFactory("nnunet", "m/", BackendOptions(folds=("0",)))
    shared = worker_models(Models(muscle=chosen), workers=3, cpu_count=16).source("muscle")
    assert shared.options.threads == 5 and shared.options.folds == ("0",) and shared.model == "m/"  # type: ignore[union-attr]
    pinned = BackendFactory(options=BackendOptions(threads=7))
    assert worker_models(Models(muscle=pinned), workers=2, cpu_count=16).source("muscle") is pinned  # --threads wins

    def custom():  # a user's callable is theirs to configure
        raise AssertionError

    assert worker_models(Models(muscle=custom), workers=2, cpu_count=16).source("muscle") is custom
    assert worker_models(Models(muscle=None), workers=2, cpu_count=16).source("muscle") is None
