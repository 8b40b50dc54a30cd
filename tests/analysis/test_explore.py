"""The explorer's logic without a browser: its trial table, filters, progress and ETA, curves,
parallel coordinates, the hub's caching and checks, the verdict and comparison views, the
exports, the escaping of a study's strings and the refusals of ``gcnc serve``."""

from __future__ import annotations

import io
import pathlib
import socket

import numpy as np
import pandas as pd
import pytest
from synthetic_study import SyntheticSpec, write_synthetic_study

import analysis.explore
from analysis import ResultsError, aggregate, load_results
from analysis.explore import _curves, _finals, _results, _server, _trials, _views
from analysis.explore._hub import StudyHub
from analysis.explore._safe import escape_markup, safe_figure, safe_filename
from orchestrator.cli import main
from studyfiles import InputError


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory) -> str:
    """lr × batch size × 3 seeds: a diverged trial, two running ones, a stopped one."""
    spec = SyntheticSpec(
        name="grid", lrs=(0.005, 0.02, 0.1), batch_sizes=(64, 256), seeds=(0, 1, 2),
        diverged=1, running=2, stopped={2: 4},
    )  # fmt: skip
    return write_synthetic_study(tmp_path_factory.mktemp("grid"), spec)


@pytest.fixture(scope="module")
def grid(grid_dir):
    return load_results(grid_dir)


@pytest.fixture(scope="module")
def table(grid):
    return _trials.trial_table(grid)


@pytest.fixture(scope="module")
def hub(grid_dir, lr_study_dir):
    return StudyHub([grid_dir, lr_study_dir])


# -- the trial table, filters and progress ---------------------------------------------------


def test_trial_table_has_one_row_per_trial_with_its_last_evaluation(grid, table):
    assert len(table) == 18 and table["trial_id"].is_unique
    m = grid.metrics
    last = m.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    for row in table.itertuples():
        assert row.rows == int((m["trial_id"] == row.trial_id).sum())
        assert row.epoch == last.loc[row.trial_id, "epoch"]
        assert row._asdict()["gc"] == pytest.approx(last.loc[row.trial_id, "gc"], nan_ok=True)
    assert table.set_index("trial_id")["status"].value_counts().to_dict() == {
        "done": 15, "running": 2, "stopped": 1,
    }  # fmt: skip
    assert table["diverged"].sum() == 1


def test_a_trial_without_rows_yet_is_listed_as_pending(grid):
    trials = pd.concat(
        [grid.trials, grid.trials.iloc[[0]].assign(trial_id="t99999", status="pending")]
    )
    study = type(grid)(grid.meta, grid.metrics, trials, sweep_params=grid.sweep_params)
    row = _trials.trial_table(study).set_index("trial_id").loc["t99999"]
    assert row["status"] == "pending" and row["rows"] == 0 and np.isnan(row["epoch"])


def test_filters_by_values_ranges_status_and_divergence(table):
    f = _trials.filter_trials
    assert len(f(table, {})) == 18
    assert set(f(table, {"excluded": {"train.lr": [0.1]}})["train.lr"]) == {0.005, 0.02}
    assert len(f(table, {"statuses": ["running"]})) == 2
    assert len(f(table, {"diverged": "only"})) == 1
    assert len(f(table, {"diverged": "exclude"})) == 17
    low, high = np.log10(0.004), np.log10(0.03)
    assert set(f(table, {"ranges": {"train.lr": [low, high, True]}})["train.lr"]) == {0.005, 0.02}
    # a value the page did not offer (a search's later proposal) is kept
    assert len(f(table.assign(**{"train.lr": 0.5}), {"excluded": {"train.lr": [0.1]}})) == 18


def test_a_key_with_many_numeric_values_is_filtered_by_a_log_range():
    frame = pd.DataFrame({"lr": np.geomspace(1e-4, 1.0, 40), "name": [f"n{i}" for i in range(40)]})
    by_range, by_name = _trials.filter_choices(frame, ["lr", "name"])
    assert by_range.is_range and by_range.log and by_range.low == pytest.approx(-4)
    assert not by_name.is_range and len(by_name.values) == 40


def test_filter_spec_lists_the_unticked_values_and_treats_every_status_as_no_filter():
    spec = _views.filter_spec(
        list(_trials.STATUS_NAMES), "exclude", [[0.005]],
        [[{"label": "0.005", "value": 0.005}, {"label": "0.1", "value": 0.1}]],
        [{"type": "pf-values", "param": "train.lr"}], [[-2.0, -1.0], [0.0, 1.0]],
        [[-3.0, -1.0], [0.0, 1.0]],
        [{"type": "pf-range", "param": "train.l2", "log": 1},
         {"type": "pf-range", "param": "x", "log": 0}],
    )  # fmt: skip
    assert spec == {
        "excluded": {"train.lr": [0.1]}, "ranges": {"train.l2": [-2.0, -1.0, True]},
        "statuses": None, "diverged": "exclude",
    }  # fmt: skip


def test_progress_counts_statuses_and_estimates_the_time_left_from_the_end_rate(grid, table):
    p = _trials.progress(grid, table)
    assert p.counts["done"] == 15 and p.counts["running"] == 2 and p.counts["stopped"] == 1
    assert (p.total, p.ended, p.diverged, p.rows) == (18, 16, 1, len(grid.metrics))
    m = grid.metrics
    ended = table.loc[~table["status"].isin(_trials.UNFINISHED), "trial_id"]
    last = m[m["trial_id"].isin(ended)]["written_at"].max()
    rate = 16 / (last - m["written_at"].min()).total_seconds()
    assert p.eta_s == pytest.approx(2 / rate)
    idle = _trials.progress(grid, table.assign(status="done"))
    assert idle.eta_s is None  # nothing runs: no ETA


def test_durations_read_naturally():
    assert [_trials.duration_text(s) for s in (None, 42, 720, 7200)] == [
        "—",
        "42 s",
        "12 min",
        "2.0 h",
    ]


# -- curves ------------------------------------------------------------------------------------


def test_group_curves_are_the_centre_across_seeds_of_each_setting(grid, table):
    ids = table["trial_id"].tolist()
    view = _curves.curves_view(grid, ids, metric="gc", colour="train.lr")
    assert len(view.traces) == 6  # 3 lrs × 2 batch sizes, seeds pooled
    line = next(t for t in view.traces if t.name == "lr=0.02, batch_size=64")
    m = grid.metrics
    at = m[(m["train.lr"] == 0.02) & (m["train.batch_size"] == 64) & (m["epoch"] == 4)]["gc"]
    assert line.y[line.x == 4][0] == pytest.approx(np.exp(np.log(at).mean()))
    assert line.colour == 0.02 and line.low[4] < line.y[4] < line.high[4]
    # the batch sizes of one lr share its colour and differ in line style
    assert {t.dash for t in view.traces if t.colour == 0.02} == {"solid", "dash"}


def test_group_curves_by_progress_match_the_analysis_curves(lr_study):
    ids = lr_study.metrics["trial_id"].astype(str).unique().tolist()
    view = _curves.curves_view(lr_study, ids, metric="nc_cdnv", x="train_loss", colour="train.lr")
    assert len(view.traces) == 3
    want, _ = aggregate.curves(lr_study, "train.lr", ["nc_cdnv"], align="train_loss")
    for t in view.traces:
        part = want[(want["param"] == t.colour) & (want["n"] > 0)].sort_values("x")
        np.testing.assert_allclose(t.x, part["x"])
        np.testing.assert_allclose(t.y, part["mean"])


def test_wall_time_places_each_epoch_at_its_settings_mean_wall_time(grid, table):
    view = _curves.curves_view(grid, table["trial_id"].tolist(), metric="gc", x="wall_time_s")
    m = grid.metrics
    rows = m[(m["train.lr"] == 0.005) & (m["train.batch_size"] == 256)]
    line = next(t for t in view.traces if t.name == "lr=0.005, batch_size=256")
    np.testing.assert_allclose(line.x, rows.groupby("epoch")["wall_time_s"].mean().to_numpy())


def test_trial_curves_join_each_colour_s_trials_and_name_every_point(grid, table):
    ids = table["trial_id"].tolist()
    view = _curves.curves_view(
        grid, ids, metric="gc", colour="train.lr", facet="train.batch_size", mode="trials"
    )
    assert len(view.traces) == 6 and view.facets == [64, 256]
    t = next(t for t in view.traces if t.colour == 0.1 and t.facet == 64)
    assert set(t.trial_ids) == set(
        table[(table["train.lr"] == 0.1) & (table["train.batch_size"] == 64)]["trial_id"]
    )
    assert np.isnan(t.y[np.isnan(t.x)]).all()  # a gap between trials
    fig = _curves.plot_curves_view(view)
    assert fig.layout.xaxis2 is not None and len(fig.data) == 6


def test_averaging_over_seeds_ignores_a_seed_colour_and_says_so(grid, table):
    view = _curves.curves_view(grid, table["trial_id"].tolist(), metric="gc", colour="train.seed")
    assert view.colour is None and "ignored" in view.notes[0]


# -- final values --------------------------------------------------------------------------------


def test_parallel_coordinates_put_wide_quantities_on_a_log_axis_and_count_gaps(grid, table):
    info = _finals.parcoords_info(grid, table, colour_by="gc")
    names = [a.name for a in info.axes]
    assert names[:2] == ["train.lr", "train.batch_size"] and "gc" in names
    assert info.left_out == 1 + 2 * 0  # the diverged trial's last row is null
    loss = next(a for a in info.axes if a.name == "train_loss")
    assert loss.label.startswith("log10") and len(loss.values) == len(info.trial_ids)


def test_a_key_whose_values_are_text_gets_coded_ticks():
    axis = _finals._axis(pd.Series(["sgd", "adam", "sgd"]), "optim.name")
    assert axis.ticktext == ["adam", "sgd"] and list(axis.values) == [1.0, 0.0, 1.0]


def test_brushing_events_become_ranges_on_numbers_and_values_on_text():
    axes = [
        {"name": "train.lr", "log": True, "ticktext": []},
        {"name": "optim.name", "log": False, "ticktext": ["adam", "lion", "sgd"]},
        {"name": "gc", "log": False, "ticktext": []},
    ]
    one = _trials.brush_from_event(
        {}, [{"dimensions[0].constraintrange": [[-2.5, -1.5]]}, [0]], axes
    )
    assert one == {"train.lr": {"log": True, "spans": [[-2.5, -1.5]]}}
    # several ranges on one axis (Plotly wraps them once more), reversed ends ordered
    two = _trials.brush_from_event(
        one, [{"dimensions[2].constraintrange": [[[0.5, 0.1], [2.0, 3.0]]]}, [0]], axes
    )
    assert two["gc"] == {"log": False, "spans": [[0.1, 0.5], [2.0, 3.0]]}
    assert two["train.lr"] == one["train.lr"]
    text = _trials.brush_from_event(
        {}, [{"dimensions[1].constraintrange": [[0.8, 2.2]]}, [0]], axes
    )
    assert text == {"optim.name": {"values": ["lion", "sgd"]}}
    cleared = _trials.brush_from_event(two, [{"dimensions[0].constraintrange": None}, [0]], axes)
    assert set(cleared) == {"gc"}
    for junk in (None, [], [{"dimensions[7].constraintrange": [[0, 1]]}, [0]],
                 [{"dimensions[0].constraintrange": [["a", 1]]}, [0]],
                 [{"dimensions[0].constraintrange": [[0, float("inf")]]}, [0]],
                 [{"line.color": [1]}, [0]]):  # fmt: skip
        assert _trials.brush_from_event(one, junk, axes) in (one, {})  # never raises
    assert _trials.brush_from_event(one, [{"dimensions[7].constraintrange": [[0, 1]]}], axes) == one


def test_brushes_keep_the_trials_inside_any_of_their_ranges(table):
    f = _trials.filter_trials
    lr = {"log": True, "spans": [[np.log10(0.004), np.log10(0.006)], [-1.1, -0.9]]}
    assert set(f(table, {"brushed": {"train.lr": lr}})["train.lr"]) == {0.005, 0.1}
    batch = {"values": ["256"]}
    both = f(table, {"brushed": {"train.lr": lr, "train.batch_size": batch}})
    assert set(both["train.batch_size"]) == {256} and len(both) == 6
    gaps = table.assign(gc=table["gc"].where(table["trial_id"] != "t00000"))
    cut = float(table["gc"].median())
    kept = f(gaps, {"brushed": {"gc": {"log": False, "spans": [[0.0, cut]]}}})
    assert set(kept["trial_id"]) == set(table.loc[table["gc"] <= cut, "trial_id"]) - {"t00000"}


def test_the_parallel_coordinates_show_the_brushed_ranges_over_the_unbrushed_trials(hub):
    spec = {"brushed": {"train.lr": {"log": False, "spans": [[0.004, 0.03]]}}}
    figure, axes = _views.parcoords_figure(hub, 0, spec, "gc")
    unbrushed, same_axes = _views.parcoords_figure(hub, 0, {}, "gc")
    assert axes == same_axes and axes[0]["name"] == "train.lr"
    dims = figure["data"][0]["dimensions"]
    assert dims[0]["constraintrange"] == [0.004, 0.03]
    assert "constraintrange" not in unbrushed["data"][0]["dimensions"][0]
    assert len(dims[0]["values"]) == len(unbrushed["data"][0]["dimensions"][0]["values"])
    assert _views.trial_count(hub, 0, spec) == "12 of 18 trials shown"
    assert _views.brush_note(spec["brushed"]) == (
        "brushed on the parallel coordinates: lr in [0.004, 0.03]"
    )


def test_the_trial_table_pages_through_every_trial(hub, monkeypatch):
    monkeypatch.setattr(_views, "MAX_ROWS", 5)
    ids = []
    for page in (1, 2, 3, 4):
        listing, _ = _views.trial_list(hub, 0, {}, "gc", sort_by="trial_id", page=page)
        rows = listing.children[0].children[1].children
        ids += [r.id["trial"] for r in rows]
        note = listing.children[1].children
        assert note.startswith(f"rows {5 * (page - 1) + 1}–{min(5 * page, 18)} of 18 (page {page}")
    assert ids == sorted(hub.table(0)["trial_id"])
    past, _ = _views.trial_list(hub, 0, {}, "gc", sort_by="trial_id", page=99)
    assert [r.id["trial"] for r in past.children[0].children[1].children] == ids[15:]


def test_the_page_opens_with_its_curves_drawn_and_the_callback_leaves_them(hub):
    from analysis.explore._callbacks import _draw

    opening = _views.opening_view(hub, 0)
    assert opening["figure"]["data"] and opening["metric"] == "gc"
    assert opening["colour"] == "train.lr" and opening["x"] == "epoch"
    # the filters as the page's untouched controls give them: every trial shown
    ticked = [
        (c.values, [{"value": v} for v in c.values], {"param": c.param})
        for c in _trials.filter_choices(hub.table(0), _trials.params(hub.study(0)))
    ]
    spec = _views.filter_spec(
        list(_trials.STATUS_NAMES), "any", *map(list, zip(*ticked, strict=True)), [], [], []
    )
    assert spec == opening["spec"]
    # the values the page's controls start with give the key of the figure it holds
    draw = _draw(opening["metric"], "epoch", opening["colour"], None, "groups", [])
    assert _views.curves_key(hub, 0, spec, draw) == opening["key"]
    hub.versions[0] += 1  # new data: the same controls ask for a new figure
    assert _views.curves_key(hub, 0, spec, draw) != opening["key"]


# -- the hub -------------------------------------------------------------------------------------


def test_the_hub_takes_study_indices_only(hub):
    assert hub.index(1) == 1
    for bad in (2, -1, True, "0", "/etc", None, 0.0):
        with pytest.raises(ValueError):
            hub.index(bad)


def test_results_are_computed_once_per_data_version_and_settings(hub):
    first = hub.results(0)
    assert hub.results(0) is first and hub.results(0, {"alpha": None}) is first
    other = hub.results(0, {"alpha": 0.1})
    assert other is not first and other.label == "exploratory" and first.label == "primary"
    hub.versions[0] += 1  # what a refresh that found new data does
    assert hub.results(0) is not first


def test_a_directory_that_is_not_a_study_is_refused(tmp_path):
    with pytest.raises(ResultsError):
        StudyHub([str(tmp_path)])


def test_a_click_selects_a_trial_only_if_the_study_holds_it(hub):
    point = {"points": [{"customdata": "t00001", "x": 3}]}
    assert _views.clicked_trial("curves", point) == "t00001"
    row = {"type": "trial-row", "trial": "t00002"}
    assert _views.clicked_trial(row, None, row_clicks=1) == "t00002"
    assert _views.clicked_trial(row, None, row_clicks=0) is None  # drawn, not clicked
    assert _views.find_trial(hub, 0, "t00001") == "t00001"
    for bad in ("../../etc/passwd", "t99999", 3, None):
        assert _views.find_trial(hub, 0, bad) is None


# -- verdicts, comparison, exports -----------------------------------------------------------------


def _texts(component) -> list[str]:
    """Every string in a Dash component tree."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list | tuple):
        return [s for c in component for s in _texts(c)]
    return _texts(getattr(component, "children", None) or [])


def test_the_verdict_view_is_labelled_exploratory_when_a_setting_departs_from_the_plan(hub):
    planned = _results.verdict_panel(hub, 1, _results.overrides(alpha="plan", correction="plan"))
    assert planned[0].className == "label label-primary"
    changed = _results.verdict_panel(hub, 1, _results.overrides(alpha=0.1, correction="plan"))
    assert changed[0].className == "label label-exploratory"
    assert "alpha=0.1" in changed[0].children


def test_the_comparison_has_one_column_per_study_in_each_block(hub):
    panel = _results.compare_panel(hub, {})
    tables = [c for c in panel if getattr(c, "id", "").startswith("compare-")]
    assert [t.id for t in tables] == ["compare-final", "compare-matched"]
    for t in tables:
        heads = [th for th in t.children[0].children.children if th.className == "study-col"]
        assert [th.children for th in heads] == ["grid", "lr-sweep"]


def test_rows_export_as_csv_and_parquet_hold_the_trials_shown(hub):
    spec = {"statuses": ["running"]}
    ids = set(_views.shown_trials(hub, 0, spec)["trial_id"])
    csv = _results.rows_download(hub, 0, spec, "csv")
    assert csv["filename"] == "grid-rows.csv"
    parquet = _results.rows_download(hub, 0, spec, "parquet")
    import base64

    back = pd.read_parquet(io.BytesIO(base64.b64decode(parquet["content"])))
    assert (
        set(back["trial_id"]) == ids
        and len(back) == hub.table(0).set_index("trial_id").loc[list(ids), "rows"].sum()
    )


def test_the_snapshot_is_one_self_contained_page(hub):
    draw = {"metric": "gc", "x": "epoch", "colour": "train.lr", "facet": None, "mode": "groups"}
    out = _results.snapshot(hub, 0, {"diverged": "exclude"}, draw, {})
    page = out["content"]
    assert out["filename"] == "grid-explorer.html"
    assert "<script src=" not in page and "plotly.js v" in page.lower()
    assert 'id="fig-curves"' in page and "17 of 18 trials shown" in page


# -- escaping ------------------------------------------------------------------------------------


def test_markup_in_a_string_is_escaped_but_layout_tags_are_kept():
    text = '<b>t1</b><br><a href="https://x">link</a><span style="x">s</span><img src=x>'
    assert escape_markup(text) == (
        '<b>t1</b><br>&lt;a href="https://x"&gt;link&lt;/a&gt;&lt;span style="x"&gt;s'
        "&lt;/span&gt;&lt;img src=x&gt;"
    )


def test_every_string_of_a_figure_is_escaped_but_ids_not_shown():
    import plotly.graph_objects as go

    fig = go.Figure(
        [
            go.Scatter(x=[1], y=[1], name="<a href='x'>n</a>", customdata=["<t1>"]),
            go.Heatmap(
                z=[[1]], x=["<i>k</i><a>"], customdata=[["<a>"]], hovertemplate="%{customdata}"
            ),
        ]
    )
    fig.update_layout(title="<span style='x'>t</span>")
    safe = safe_figure(fig)
    assert safe["data"][0]["name"] == "&lt;a href='x'&gt;n&lt;/a&gt;"
    assert list(safe["data"][0]["customdata"]) == ["<t1>"]  # not shown: a click returns it
    assert safe["data"][1]["customdata"] == [["&lt;a&gt;"]] and safe["data"][1]["x"] == [
        "<i>k</i>&lt;a&gt;"
    ]
    assert safe["layout"]["title"]["text"] == "&lt;span style='x'&gt;t&lt;/span&gt;"


def test_download_names_keep_safe_characters_only():
    assert safe_filename("../../etc/passwd") == "etc_passwd"
    assert safe_filename("<img>") == "img" and safe_filename("///") == "study"


def test_the_explorer_never_renders_raw_html():
    package = pathlib.Path(analysis.explore.__file__).parent
    for path in package.glob("*.py"):
        text = path.read_text()
        assert "dangerously_allow_html" not in text and "dcc.Markdown" not in text, path.name


# -- gcnc serve's refusals -------------------------------------------------------------------------


def test_a_port_in_use_is_refused_naming_the_port_and_the_fix():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError) as err:
            _server.check_port("127.0.0.1", port)
    assert (
        err.value.line() == f"--port: port {port} on 127.0.0.1 is in use (pick another with --port)"
    )


def test_gcnc_serve_refuses_bad_input_in_one_line_with_exit_2(tmp_path, capsys, lr_study_dir):
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert main(["serve", lr_study_dir, "--port", "0", "--host", "256.0.0.1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("gcnc: error: ") for line in lines)
    assert "STUDY_DIR" in lines[0] and "--host" in lines[1]


def test_another_host_than_loopback_is_warned_about(monkeypatch, capsys, lr_study_dir):
    served = {}

    class Server:  # stands for werkzeug's: Ctrl-C at once
        def __init__(self, host, port, app, *, threaded):
            served.update(host=host, port=port, threaded=threaded)

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            served["closed"] = True

    monkeypatch.setattr(_server, "make_server", Server)
    analysis.explore.serve([lr_study_dir], host="0.0.0.0", port=0)
    err = capsys.readouterr().err
    assert "WARNING: serving on 0.0.0.0:0" in err and "SSH tunnel" in err
    assert served == {"host": "0.0.0.0", "port": 0, "threaded": True, "closed": True}
    assert "stopped" in err


def test_loopback_is_served_without_a_warning(monkeypatch, capsys, lr_study_dir):
    class Server:
        def __init__(self, *args, **kw):
            pass

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            pass

    monkeypatch.setattr(_server, "make_server", Server)
    analysis.explore.serve([lr_study_dir], port=0)
    err = capsys.readouterr().err
    assert "WARNING" not in err and "http://127.0.0.1:0/" in err


def test_an_unreadable_metrics_file_at_start_is_refused(tmp_path, capsys):
    study = write_synthetic_study(tmp_path / "s", SyntheticSpec(running=0, restarted=0))
    (tmp_path / "s" / "metrics" / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match=r"broken\.parquet"):
        StudyHub([study])
    assert main(["serve", study, "--port", "0"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "broken.parquet" in line
    hub = StudyHub([study], allow_missing=True)  # gcnc serve --allow-missing
    assert any("broken.parquet" in w for w in hub.study(0).warnings)


def test_a_file_that_turns_unreadable_while_live_is_named_on_the_page(tmp_path):
    study = write_synthetic_study(tmp_path / "s", SyntheticSpec(running=0, restarted=0))
    hub = StudyHub([study])
    rows = len(hub.study(0).metrics)
    (tmp_path / "s" / "metrics" / "broken.parquet").write_bytes(b"not parquet")
    hub.refresh()
    _, problem = _views.refresh_line(hub, 0)
    assert "broken.parquet" in problem[0].children and len(hub.study(0).metrics) == rows
    (tmp_path / "s" / "metrics" / "broken.parquet").unlink()
    hub.refresh()
    assert _views.refresh_line(hub, 0)[1] == []
