"""Malformed study files exit 2 with one line naming the field, and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from gcnc_testkit import write_study

from orchestrator import cli

GOOD = """
name = "good"
[train]
epochs = 2
[sweep]
seeds = [0, 1]
[sweep.grid]
train.lr = [0.01, 0.1]
[smoke]
train.epochs = 1
"""

# (case id, file text, field named first on the error line)
MALFORMED = [
    ("unknown-section", "trian = {lr = 0.1}", "trian"),
    ("unknown-train-key", "[train]\nlrr = 0.1", "train.lrr"),
    ("lr-wrong-type", '[train]\nlr = "fast"', "train.lr"),
    ("lr-zero", "[train]\nlr = 0", "train.lr"),
    ("lr-negative", "[train]\nlr = -0.1", "train.lr"),
    ("batch-zero", "[train]\nbatch_size = 0", "train.batch_size"),
    ("batch-fraction", "[train]\nbatch_size = 32.5", "train.batch_size"),
    ("epochs-negative", "[train]\nepochs = -1", "train.epochs"),
    ("momentum-one", "[train]\nmomentum = 1.0", "train.momentum"),
    ("width-zero", "[model]\nwidth = 0", "model.width"),
    (
        "ways-above-targets",
        "[data]\nsource_classes = [0, 1]\ntarget_classes = [5, 6]\n[metrics]\nfewshot_ways = 5",
        "metrics.fewshot_ways",
    ),
    (
        "classes-overlap",
        "[data]\nsource_classes = [0, 1]\ntarget_classes = [1, 2]",
        "data.source_classes",
    ),
    ("gpus-fraction-above-one", "[resources]\ngpus_per_trial = 1.5", "resources.gpus_per_trial"),
    ("cpus-zero", "[resources]\ncpus_per_trial = 0", "resources.cpus_per_trial"),
    ("max-failures-negative", "[resources]\nmax_failures = -1", "resources.max_failures"),
    ("unknown-dataset", '[data]\nname = "imagenet22k"', "data.name"),
    ("unknown-model", '[model]\nname = "transformer"', "model.name"),
    ("unknown-estimator", '[metrics]\ngc_estimator = "magic"', "metrics.gc_estimator"),
    ("unknown-data-option", "[data.options]\ncolour = 3", "data.options.colour"),
    (
        "unknown-model-option",
        '[model]\nname = "vgg11"\noptions = {depth = 4}',
        "model.options.depth",
    ),
    (
        "grid-option-of-another-dataset",
        '[sweep.grid]\ndata.name = ["digits", "glyphs"]\ndata.options = [{}, {n_classes = 20}]',
        "sweep.grid.data.options.n_classes",
    ),
    ("unknown-trainable", 'trainable = "mystery"', "trainable"),
    ("bad-name", 'name = "two words"', "name"),
    ("grid-unknown-key", "[sweep.grid]\ntrain.lrr = [0.1]", "sweep.grid.train.lrr"),
    ("grid-impossible-value", "[sweep.grid]\ntrain.lr = [0.1, 0.0]", "sweep.grid.train.lr"),
    ("grid-not-a-list", "[sweep.grid]\ntrain.lr = 0.1", "sweep.grid.train.lr"),
    (
        "grid-unknown-dataset",
        '[sweep.grid]\ndata.name = ["digits", "nope"]',
        "sweep.grid.data.name",
    ),
    ("seeds-repeated", "[sweep]\nseeds = [1, 1]", "sweep.seeds"),
    (
        "sweep-and-search",
        '[sweep]\nseeds = [0]\n[search]\nmetric = "test_acc"\nmode = "max"\nbudget = 2\n'
        "[search.space]\ntrain.lr = {loguniform = [0.001, 0.1]}",
        "search",
    ),
    (
        "tpe-without-metric",
        '[search]\nmode = "max"\nbudget = 4\n[search.space]\ntrain.lr = {uniform = [0.01, 0.1]}',
        "search.metric",
    ),
    (
        "search-unknown-metric",
        '[search]\nmetric = "accuracy"\nmode = "max"\nbudget = 4\n'
        "[search.space]\ntrain.lr = {uniform = [0.01, 0.1]}",
        "search.metric",
    ),
    (
        "search-bad-mode",
        '[search]\nmetric = "test_acc"\nmode = "best"\nbudget = 4\n'
        "[search.space]\ntrain.lr = {uniform = [0.01, 0.1]}",
        "search.mode",
    ),
    (
        "tpe-without-budget",
        '[search]\nmetric = "test_acc"\nmode = "max"\n'
        "[search.space]\ntrain.lr = {uniform = [0.01, 0.1]}",
        "search.budget",
    ),
    (
        "distribution-two-kinds",
        '[search]\nmetric = "test_acc"\nmode = "max"\nbudget = 4\n'
        "[search.space]\ntrain.lr = {uniform = [0.01, 0.1], loguniform = [0.01, 0.1]}",
        "search.space.train.lr",
    ),
    (
        "loguniform-from-zero",
        '[search]\nmetric = "test_acc"\nmode = "max"\nbudget = 4\n'
        "[search.space]\ntrain.lr = {loguniform = [0.0, 0.1]}",
        "search.space.train.lr",
    ),
    (
        "search-space-impossible-value",
        '[search]\nmetric = "test_acc"\nmode = "max"\nbudget = 4\n'
        "[search.space]\ntrain.batch_size = {integer = [0, 64]}",
        "search.space.train.batch_size",
    ),
    (
        "optuna-grid-needs-choices",
        '[search]\nalgorithm = "grid"\nmetric = "test_acc"\nmode = "max"\n'
        "[search.space]\ntrain.lr = {uniform = [0.01, 0.1]}",
        "search.space.train.lr",
    ),
    ("scheduler-without-metric", "[scheduler]\ngrace_period = 2", "scheduler.metric"),
    (
        "scheduler-unknown-type",
        '[scheduler]\ntype = "hyperband"\nmetric = "test_acc"\nmode = "max"',
        "scheduler.type",
    ),
    (
        "scheduler-reduction-one",
        '[scheduler]\nmetric = "test_acc"\nmode = "max"\nreduction_factor = 1',
        "scheduler.reduction_factor",
    ),
    ("class-id-out-of-range", "[data]\nsource_classes = [0, 99]", "data.source_classes"),
    (
        "glyphs-vocabulary-too-large",
        '[data]\nname = "glyphs"\noptions = {vocabulary = 500}',
        "data.options.vocabulary",
    ),
    (
        "glyphs-too-many-classes",
        '[data]\nname = "glyphs"\noptions = {n_classes = 3000}',
        "data.options.n_classes",
    ),
    (
        "synthetic-negative-noise",
        '[data]\nname = "synthetic"\noptions = {noise = -1}',
        "data.options.noise",
    ),
    (
        "grid-option-value",
        '[data]\nname = "synthetic"\n[sweep.grid]\ndata.options.n_classes = [4, 0]',
        "sweep.grid.data.options.n_classes",
    ),
    ("cuda-without-gpus", '[train]\ndevice = "cuda"', "train.device"),
    (
        "resnet-unknown-stem",
        '[model]\nname = "resnet18"\noptions = {stem = "tiny"}',
        "model.options.stem",
    ),
    (
        "convnet-depth-zero",
        '[model]\nname = "convnet"\noptions = {depth = 0}',
        "model.options.depth",
    ),
    (
        "layers-unknown-name",
        '[model]\nname = "vgg11"\n[metrics]\nlayers = ["block9"]',
        "metrics.layers",
    ),
    ("layers-not-a-choice", '[metrics]\nlayers = "first"', "metrics.layers"),
    ("layers-empty", "[metrics]\nlayers = []", "metrics.layers"),
    ("layers-repeated", '[metrics]\nlayers = ["conv1", "conv1"]', "metrics.layers"),
    (
        "layers-beyond-a-swept-depth",
        '[metrics]\nlayers = ["conv4"]\n[sweep.grid]\nmodel.options.depth = [5, 3]',
        "metrics.layers",
    ),
    ("smoke-unknown-key", "[smoke]\ntrain.lrr = 1", "smoke.train.lrr"),
    ("smoke-impossible-value", "[smoke]\ntrain.batch_size = 0", "smoke.train.batch_size"),
]


def _run_bad(tmp_path: Path, text: str, monkeypatch, capsys, *extra: str) -> tuple[int, str, str]:
    def never(*args, **kwargs):
        raise AssertionError("a malformed study passed validation")

    monkeypatch.setattr(cli, "execute", never)
    path = write_study(tmp_path, text)
    storage = tmp_path / "runs"
    code = cli.main(["run", str(path), "--storage", str(storage), *extra])
    out, err = capsys.readouterr()
    assert not storage.exists(), "nothing may be written for bad input"
    return code, out, err


def test_there_are_at_least_twenty_malformed_cases():
    assert len(MALFORMED) >= 20


@pytest.mark.parametrize(
    ("text", "field"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_file_exits_2_with_one_line_naming_the_field(
    tmp_path, monkeypatch, capsys, text, field
):
    code, out, err = _run_bad(tmp_path, text, monkeypatch, capsys)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gcnc: error: {field}: "), lines[0]
    assert lines[0].endswith(")"), "the line ends with the fix in parentheses"


def test_a_layer_the_model_lacks_is_refused_naming_the_model_s_layers(
    tmp_path, monkeypatch, capsys
):
    text = '[model]\nname = "resnet18"\n[metrics]\nlayers = ["layer2", "block9"]'
    code, _, err = _run_bad(tmp_path, text, monkeypatch, capsys)
    assert code == 2
    assert err == (
        "gcnc: error: metrics.layers: model 'resnet18' has no layer 'block9' "
        '(its layers: layer1, layer2, layer3, layer4; or "all")\n'
    )


def test_invalid_toml_names_the_file_and_the_line(tmp_path, monkeypatch, capsys):
    code, _, err = _run_bad(tmp_path, "[train\nlr = 0.1", monkeypatch, capsys)
    assert code == 2
    assert err.startswith(f"gcnc: error: {tmp_path / 'study.toml'}: invalid TOML")
    assert "line 1" in err


def test_missing_file_exits_2(tmp_path, capsys):
    code = cli.main(["validate", str(tmp_path / "nope.toml")])
    assert code == 2
    assert capsys.readouterr().err.startswith("gcnc: error: ")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("train.lr=0", "train.lr"),
        ("nonsense", "--set"),
        ("train.lr.x=1", "train.lr"),
        ("sweep.grid.train.lr=[0.1, -1]", "sweep.grid.train.lr"),
    ],
)
def test_bad_override_exits_2_naming_it(tmp_path, monkeypatch, capsys, override, field):
    code, _, err = _run_bad(tmp_path, GOOD, monkeypatch, capsys, "--set", override)
    assert code == 2
    assert err.startswith(f"gcnc: error: {field}: "), err


def test_unknown_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "x.toml", "--bogus"])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_validate_accepts_a_good_file_and_counts_trials(tmp_path, capsys):
    path = write_study(tmp_path, GOOD)
    assert cli.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"ok: {path}: study good, 4 trials, smoke: 4 trials"


def test_validate_reports_each_bad_file_and_exits_2(tmp_path, capsys):
    good = write_study(tmp_path, GOOD, filename="good.toml")
    bad = write_study(tmp_path, "[train]\nlr = 0", filename="bad.toml")
    assert cli.main(["validate", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(f"ok: {good}")
    assert captured.err.strip().startswith(f"gcnc: error: {bad}: train.lr: ")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'name = "x"\n# caf\xe9\n', "not UTF-8 text (byte 0xe9 at offset 16)"),
        (bytes(range(256)) * 4, "not UTF-8 text"),
        (b"", "holds no setting"),
        (b"# only a comment\n\n", "holds no setting"),
        (b'name = "x"\0\n', "holds NUL bytes"),
        (b"#" * (2**20 + 1), "larger than 1 MiB"),
    ],
    ids=["latin-1", "binary", "empty", "comment-only", "nul", "huge"],
)
def test_a_file_that_is_no_study_file_exits_2_naming_it(
    tmp_path, monkeypatch, capsys, content, problem
):
    path = tmp_path / "study.toml"
    path.write_bytes(content)
    monkeypatch.setattr(cli, "execute", lambda *a, **k: pytest.fail("a bad file was run"))
    code = cli.main(["run", str(path), "--storage", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"gcnc: error: {path}: {problem}"), err
    assert not (tmp_path / "runs").exists()


def test_a_folder_given_as_the_study_file_exits_2(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"gcnc: error: {tmp_path}: cannot read it")
