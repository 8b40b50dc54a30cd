"""The driver's records without Ray: trial events to trials.parquet, status, progress."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from gcnc_testkit import Results, raw_rows, read_rows, read_trials, sleep_study, starts

from orchestrator import cli, driver, progress
from orchestrator.book import Counts
from orchestrator.driver import RunnerTrial, StudyRun
from orchestrator.parts import list_parts
from orchestrator.progress import ProgressView, eta_seconds, format_duration, status_line
from orchestrator.provenance import open_study_dir
from orchestrator.studyfile import load_spec
from orchestrator.trial import make_job, run_trial
from studyfiles import StudyDir
from trainables.reporter import TrialInterrupted


@pytest.fixture
def setup(tmp_path):
    path = sleep_study(tmp_path, "[sweep]\nseeds = [0, 1, 2]", epochs=2, sleep_s=0.0)
    study = load_spec(path)
    sdir = StudyDir.of(str(tmp_path / "runs"), study.name)
    info, _ = open_study_dir(sdir, study)
    return study, sdir, make_job(study, sdir, info)


def test_every_grid_trial_is_pending_before_the_run(setup):
    study, sdir, job = setup
    StudyRun(study, job, sdir)
    trials = read_trials(sdir.location)
    assert trials["status"].tolist() == ["pending"] * 3
    assert trials["train.seed"].tolist() == [0, 1, 2]
    assert trials["attempts"].tolist() == [0, 0, 0]


def test_events_update_the_records_and_a_new_run_continues_them(setup):
    study, sdir, job = setup
    run = StudyRun(study, job, sdir)
    run.started("tune-a", {"point": 0})
    run_trial(job, job.points[0], "t00000", Results())
    run.result("tune-a", {"point": 0}, {"epoch": 2, "diverged": False})
    run.completed("tune-a", {"point": 0})
    run.started("tune-b", {"point": 1})
    run.errored("tune-b", {"point": 1}, "Traceback ...\nRuntimeError: boom", retrying=True)
    run.started("tune-b", {"point": 1})
    run.result("tune-b", {"point": 1}, {"epoch": 1, "diverged": True})
    assert run.book.counts() == Counts(total=3, done=1, running=1, failed=0, diverged=1, pending=1)
    assert run.work() == (3.0, 3.0)  # t0 done (2), t1 at 1 of 2, t2 not started (2)
    counts = run.finish()
    assert (counts.running, counts.interrupted, counts.pending) == (0, 1, 1)
    trials = read_trials(sdir.location).set_index("trial_id")
    assert trials.loc["t00001", "status"] == "interrupted"  # started, not ended
    assert trials.loc["t00001", "attempts"] == 2
    assert trials.loc["t00001", "error"].endswith("boom")
    again = StudyRun(study, job, sdir)  # a resumed run starts from the file
    assert again.book.trials["t00000"].status == "done"
    assert again.book.trials["t00001"].attempts == 2


def test_status_counts_trials_and_distinct_rows(setup, capsys):
    study, sdir, job = setup
    run = StudyRun(study, job, sdir)
    for index in (0, 1):
        run.started(f"r{index}", {"point": index})
        run_trial(job, job.points[index], f"t0000{index}", Results())
        run.completed(f"r{index}", {"point": index})
    run.started("r2", {"point": 2})
    with pytest.raises(TrialInterrupted):
        run_trial(job, job.points[2], "t00002", Results(stop_after=2))
    run.errored("r2", {"point": 2}, "RuntimeError: out of memory", retrying=False)
    run.tick(force=True)
    assert cli.main(["status", sdir.location]) == 0
    out = capsys.readouterr().out
    assert "trials: 3 — 2 done, 0 running, 1 failed, 0 pending; 0 diverged" in out
    assert "rows: 8 metrics rows from 3 trials" in out
    assert "t00002: RuntimeError: out of memory" in out


def test_status_of_a_missing_dir_is_bad_input(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("gcnc: error: STUDY_DIR: ")


def test_durations_and_eta():
    assert [format_duration(s) for s in (None, 5, 65, 3725)] == ["?", "5s", "1m05s", "1h02m"]
    assert eta_seconds(elapsed_s=10, work_done=0, work_left=5) is None
    assert eta_seconds(elapsed_s=10, work_done=4, work_left=6) == pytest.approx(15.0)
    assert eta_seconds(elapsed_s=10, work_done=4, work_left=0) == 0.0


def test_status_line_names_every_count():
    line = status_line("s", Counts(8, 3, 2, 1, 1, 2), eta_s=70)
    assert line == "s: 3/8 done · 2 running · 1 failed · 1 diverged · ETA 1m10s"


def test_off_a_terminal_a_line_is_printed_when_the_counts_change():
    out = io.StringIO()
    view = ProgressView("s", out=out, interval_s=0.0)
    view.update(Counts(2, 0, 1, 0, 0, 1), work_done=0, work_left=4)
    view.update(Counts(2, 0, 1, 0, 0, 1), work_done=1, work_left=3)  # same counts: quiet
    view.update(Counts(2, 1, 1, 0, 0, 0), work_done=2, work_left=2)
    lines = out.getvalue().splitlines()
    assert [ln.split(" · ETA")[0] for ln in lines] == [
        "s: 0/2 done · 1 running · 0 failed · 0 diverged",
        "s: 1/2 done · 1 running · 0 failed · 0 diverged",
    ]


def test_the_eta_is_the_rate_since_the_first_work_of_the_run_not_since_its_start(monkeypatch):
    """A resumed study may take a minute to set its trials up again before any epoch ends:
    that minute is not a rate of work. Work done in earlier runs is not either."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    view = ProgressView("s", out=out, interval_s=0.0, quiet_interval_s=0.0)
    counts = Counts(4, 2, 2, 0, 0, 0)
    etas = []
    for at, done in ((0, 500), (60, 500), (61, 501), (71, 511), (81, 521)):
        clock[0] = at
        view.update(counts, work_done=done, work_left=1000 - done)
        etas.append(out.getvalue().splitlines()[-1].split("ETA ")[1])
    # nothing done yet; the first work of the run; then 10 and 20 epochs in 10 and 20 s
    assert etas == ["?", "?", "?", "8m09s", "7m59s"]
    view.update(counts, work_done=1000, work_left=0)
    assert out.getvalue().splitlines()[-1].endswith("ETA 0s")


def _finished_study(setup) -> str:
    study, sdir, job = setup
    run = StudyRun(study, job, sdir)
    for index, point in enumerate(job.points):
        run.started(f"r{index}", {"point": index})
        run_trial(job, point, f"t{index:05d}", Results())
        run.completed(f"r{index}", {"point": index})
    run.finish()
    return sdir.location


def test_finished_trials_are_merged_every_few_trials_and_at_the_end(
    setup, tmp_path, monkeypatch, capsys
):
    study, sdir, job = setup
    monkeypatch.setattr(driver, "MERGE_TRIALS", 2)
    run = StudyRun(study, job, sdir)
    for index, point in enumerate(job.points):
        run.started(f"r{index}", {"point": index})
        run_trial(job, point, f"t{index:05d}", Results())
        run.completed(f"r{index}", {"point": index})
        merged = {t for p in list_parts(sdir) for t in p.trials}
        assert merged == ({"t00000", "t00001"} if index >= 1 else set())
    run.finish()
    assert {t for p in list_parts(sdir) for t in p.trials} == {"t00000", "t00001", "t00002"}
    assert [p.name for p in Path(sdir.metrics).iterdir() if p.is_dir()] == []
    assert len(read_rows(sdir.location)) == len(raw_rows(sdir.location)) == 3 * 3
    assert cli.main(["status", sdir.location]) == 0
    assert "rows: 9 metrics rows from 3 trials" in capsys.readouterr().out
    again = StudyRun(study, job, sdir)  # a resumed run: finished trials stay finished
    again.started("r0", {"point": 0})
    run_trial(job, job.points[0], "t00000", Results())
    assert len(starts(tmp_path)) == 3  # one attempt per trial, none after the merge


def test_report_and_analyze_hand_the_study_dir_to_analysis(setup, tmp_path, capsys):
    location = _finished_study(setup)
    output = tmp_path / "out" / "report.html"
    assert cli.main(["report", location, "-o", str(output)]) == 0
    assert output.read_text().lstrip().lower().startswith("<!doctype html")
    assert cli.main(["analyze", location]) == 0
    assert "study: sleepy" in capsys.readouterr().out


def test_analysis_options_reach_the_tables_and_the_report(setup, tmp_path, capsys):
    location = _finished_study(setup)
    flags = ["--progress-by", "train_acc", "--progress-quantile", "0.7", "--alpha", "0.1"]
    out = tmp_path / "v.json"
    assert cli.main(["analyze", location, *flags, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["options"]["progress_by"] == "train_acc"
    assert data["options"]["progress_quantile"] == 0.7 and data["options"]["alpha"] == 0.1
    assert data["label"] == "exploratory"
    assert "EXPLORATORY" in capsys.readouterr().out
    report = tmp_path / "r.html"
    assert cli.main(["report", location, "-o", str(report), *flags]) == 0
    assert "progress_quantile=0.7" in report.read_text(encoding="utf-8")
    assert cli.main(["analyze", location, "--json", str(out)]) == 0  # the study's plan
    data = json.loads(out.read_text())
    assert data["label"] == "primary"
    assert {k: data["options"][k] for k in data["plan"]} == data["plan"]
    capsys.readouterr()
    for flag, bad in (("--progress-quantile", "0"), ("--progress-quantile", "1.5"),
                      ("--progress-quantile", "most"), ("--alpha", "0.7"),
                      ("--correction", "fdr")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["analyze", location, flag, bad])
        assert exit_info.value.code == 2
        assert flag in capsys.readouterr().err


def test_report_png_without_kaleido_writes_the_html_and_says_why(
    setup, tmp_path, monkeypatch, capsys
):
    location = _finished_study(setup)
    monkeypatch.setitem(sys.modules, "kaleido", None)  # import kaleido raises ImportError
    output = tmp_path / "r.html"
    assert cli.main(["report", location, "-o", str(output), "--png", str(tmp_path / "png")]) == 1
    assert output.read_text().lstrip().lower().startswith("<!doctype html")
    assert "no PNG images: PNG export needs kaleido" in capsys.readouterr().err
    assert not (tmp_path / "png").exists()


def test_without_the_analysis_package_the_report_is_skipped_with_a_message(
    setup, monkeypatch, capsys
):
    location = _finished_study(setup)
    monkeypatch.setitem(sys.modules, "analysis", None)  # import analysis raises ImportError
    assert cli.main(["report", location]) == 1
    assert "the analysis package is not available" in capsys.readouterr().err


def test_a_searcher_trial_the_runner_forgot_is_abandoned_unless_it_finished(tmp_path):
    extra = (
        '[search]\nmetric = "test_acc"\nmode = "max"\nbudget = 2\n'
        "[search.space]\ntrain.lr = {loguniform = [0.01, 1.0]}\n"
    )
    study = load_spec(sleep_study(tmp_path, extra, epochs=2, sleep_s=0.0))
    sdir = StudyDir.of(str(tmp_path / "runs"), study.name)
    info, _ = open_study_dir(sdir, study)
    job = make_job(study, sdir, info)
    run = StudyRun(study, job, sdir)
    for runner_id, lr in (("aa", 0.1), ("bb", 0.2), ("cc", 0.3)):
        run.started(runner_id, {"train.lr": lr})
    run_trial(job, {"train.lr": 0.1}, "taa", Results())  # finished, then forgotten
    with pytest.raises(TrialInterrupted):
        run_trial(job, {"train.lr": 0.2}, "tbb", Results(stop_after=1))
    run.experiment_ended([RunnerTrial("cc", {"train.lr": 0.3}, "running", {})])  # knows only cc
    statuses = {t: r.status for t, r in run.book.trials.items()}
    assert statuses == {"taa": "done", "tbb": "error", "tcc": "running"}
    assert run.book.trials["tbb"].error.startswith("abandoned")
    counts = run.book.counts()
    assert (counts.done, counts.failed, counts.abandoned, counts.running) == (1, 0, 1, 1)


def test_trials_the_runner_restored_as_ended_are_recorded_as_such(setup):
    study, sdir, job = setup
    killed = StudyRun(study, job, sdir)  # a run killed before it recorded two endings
    for index in (0, 1):
        killed.started(f"r{index}", {"point": index})
        killed.result(f"r{index}", {"point": index}, {"epoch": 1, "diverged": False})
    run_trial(job, job.points[0], "t00000", Results())
    killed.tick(force=True)
    resumed = StudyRun(study, job, sdir)
    resumed.adopt(
        [
            RunnerTrial("r0", {"point": 0}, "done", {"epoch": 2, "diverged": False}),
            RunnerTrial("r1", {"point": 1}, "error", {"epoch": 1}),
            RunnerTrial("r2", {"point": 2}, "pending", {}),
        ]
    )
    statuses = {t: (r.status, r.epochs_done) for t, r in resumed.book.trials.items()}
    assert statuses == {"t00000": ("done", 2), "t00001": ("error", 1), "t00002": ("pending", None)}


def test_a_grid_resumes_from_its_book_the_trials_not_ended_and_those_whose_rows_were_lost(
    setup,
):
    study, sdir, job = setup
    first = StudyRun(study, job, sdir)
    assert first.grid_points_to_run() == [0, 1, 2]  # a new study: every point
    for index in (0, 1):
        first.started(f"r{index}", {"point": index})
        run_trial(job, job.points[index], f"t{index:05d}", Results())
        first.completed(f"r{index}", {"point": index})
    first.started("r2", {"point": 2})
    first.errored("r2", {"point": 2}, "RuntimeError: boom", retrying=False)
    first.abort()  # (not merged: each trial's rows stay its own)
    assert StudyRun(study, job, sdir).grid_points_to_run() == [2]  # a failed trial: again

    config = job.config(job.points[1])
    job.sink("t00001", config).remove_unmerged()  # its rows, lost by hand
    assert job.checkpoints("t00001", config).load() is not None
    resumed = StudyRun(study, job, sdir)
    assert resumed.grid_points_to_run() == [1, 2]
    assert job.checkpoints("t00001", config).load() is None  # it runs again from its start
    trials = read_trials(sdir.location).set_index("trial_id")
    assert trials["status"].to_dict() == {"t00000": "done", "t00001": "pending", "t00002": "error"}


def test_a_run_being_stopped_takes_nothing_the_runner_says_at_its_end_as_an_ending(setup):
    study, sdir, job = setup
    stopping = []
    run = StudyRun(study, job, sdir, stopping=lambda: bool(stopping))
    for index in (0, 1, 2):
        run.started(f"r{index}", {"point": index})
    run_trial(job, job.points[0], "t00000", Results())  # reached its last epoch
    with pytest.raises(TrialInterrupted):
        run_trial(job, job.points[1], "t00001", Results(stop_after=2))  # at epoch 1 of 2
    stopping.append(True)
    run.errored("r2", {"point": 2}, "KeyboardInterrupt", retrying=True)  # the stop's doing
    # Tune marks every trial it stopped as ended: none of that is taken
    run.experiment_ended(
        [RunnerTrial(f"r{i}", {"point": i}, "done", {"epoch": 1}) for i in (0, 1, 2)]
    )
    counts = run.finish()
    trials = read_trials(sdir.location).set_index("trial_id")
    assert trials["status"].to_dict() == {
        "t00000": "done",  # its rows say so
        "t00001": "interrupted",
        "t00002": "interrupted",
    }
    assert trials.loc["t00001", "epochs_done"] == 1  # read from its rows
    assert trials["error"].isna().all()
    assert (counts.done, counts.interrupted, counts.failed) == (1, 2, 0)


def test_a_trial_ended_short_of_its_epochs_is_recorded_stopped_not_done(setup):
    study, sdir, job = setup
    run = StudyRun(study, job, sdir)
    run.started("r0", {"point": 0})
    with pytest.raises(TrialInterrupted):  # as a scheduler's stop after epoch 1 of 2
        run_trial(job, job.points[0], "t00000", Results(stop_after=2))
    run.completed("r0", {"point": 0})
    rec = run.book.trials["t00000"]
    assert (rec.status, rec.epochs_done) == ("stopped", 1)
    counts = run.finish()
    assert (counts.done, counts.stopped, counts.ended) == (0, 1, 1)


def test_a_trial_failing_in_a_second_run_is_named_and_resume_is_not_suggested(setup, capsys):
    study, sdir, job = setup
    for _ in range(2):
        run = StudyRun(study, job, sdir)
        for index in (0, 1, 2):
            run.started(f"r{index}", {"point": index})
            if index < 2:
                run_trial(job, job.points[index], f"t{index:05d}", Results())
                run.completed(f"r{index}", {"point": index})
        run.errored("r2", {"point": 2}, "Traceback …\nValueError: bad option", retrying=False)
        run.finish()
        assert cli.main(["status", sdir.location]) == 0
        out = capsys.readouterr().out
        if run.book.trials["t00002"].failed_runs == 1:
            assert f"finish it with: gcnc resume {sdir.location}" in out
    assert "t00002: ValueError: bad option (failed in every run so far)" in out
    assert "finish it with" not in out
    assert "resuming helps only once the cause named above is fixed" in out


def test_a_study_s_layers_are_merged_counted_and_a_damaged_layers_part_reruns_its_trials(
    tmp_path, capsys
):
    extra = '[metrics]\nlayers = ["l1", "l3"]\n[sweep]\nseeds = [0, 1, 2]'
    study = load_spec(sleep_study(tmp_path, extra, epochs=2, sleep_s=0.0))
    sdir = StudyDir.of(str(tmp_path / "runs"), study.name)
    info, _ = open_study_dir(sdir, study)
    job = make_job(study, sdir, info)
    location = _finished_study((study, sdir, job))
    (part,) = list_parts(sdir, table="layers")  # merged with the metrics when the run ended
    assert [p.name for p in Path(sdir.layers).iterdir()] == [Path(part.path).name]
    assert cli.main(["status", location]) == 0
    assert "rows: 9 metrics rows from 3 trials, 18 layers rows" in capsys.readouterr().out

    Path(part.path).write_bytes(Path(part.path).read_bytes()[:100])  # cut off
    assert cli.main(["status", location]) == 1
    out = capsys.readouterr().out
    assert f"  {part.path}: " in out and "rows missing for 3 trials" in out
    again = StudyRun(study, job, sdir)  # a resume: the file goes aside, the trials run again
    assert (Path(location) / "damaged" / "layers" / Path(part.path).name).is_file()
    again.adopt([RunnerTrial(f"r{i}", {"point": i}, "done", {}) for i in range(3)])
    assert again.rerun == {"t00000", "t00001", "t00002"}
