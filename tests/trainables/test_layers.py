"""Per-layer measures: each model's layers, each layer's quantities against brute-force
float64 references, the last layer equal to the metrics row, and ``metrics.layers``."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from trainables import MemoryReporter, TrialConfig, run
from trainables import metrics as M
from trainables.config import MetricsConfig, ModelConfig
from trainables.data import load_dataset
from trainables.evaluate import LAYERS, LayerSplits, evaluate, layer_quantities, make_plan
from trainables.forward import Embedded, embed_all, embed_layers
from trainables.models import build_model, preflight

WIDTHS = {"mlp": 16, "convnet": 8, "vgg11": 4, "vgg13": 4, "resnet18": 4, "resnet50": 2}
OPTIONS = [("mlp", {}), ("mlp", {"depth": 4}), ("convnet", {}), ("convnet", {"depth": 3}),
           ("vgg11", {}), ("vgg13", {}), ("resnet18", {}), ("resnet50", {})]  # fmt: skip


def model_of(name: str, shape=(1, 8, 8), *, seed: int = 0, **options):
    torch.manual_seed(seed)
    config = ModelConfig(name=name, width=WIDTHS[name], options=options)
    return build_model(config, input_shape=shape, num_classes=5).eval()


@pytest.mark.parametrize(("name", "options"), OPTIONS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_every_model_declares_its_layers_and_the_last_is_its_embedding(name, options, shape):
    model = model_of(name, shape, **options)
    assert list(model.layer_names()) == preflight.layer_names(name, options)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        outputs = model.layer_outputs(x)
        assert len(outputs) == len(model.layer_names())
        assert all(o.shape[0] == 3 and o.dim() == 2 for o in outputs)
        assert torch.equal(outputs[-1], model.embed(x))  # op for op, not just close
        for k, out in enumerate(outputs, start=1):
            assert torch.equal(model.layer_output(x, k), out)
            assert torch.equal(model.layer_outputs(x, upto=k)[-1], out)


def test_a_layer_s_output_is_its_block_s_map_global_average_pooled():
    model = model_of("resnet18", (3, 16, 16))
    f = model.features
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        h = f.layer1(f.maxpool(f.relu(f.bn1(f.conv1(x)))))
        h2 = f.layer2(h)
        outputs = model.layer_outputs(x)
    assert torch.allclose(outputs[0], h.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(outputs[1], h2.mean(dim=(2, 3)), atol=1e-6)
    assert outputs[1].shape == (2, 2 * WIDTHS["resnet18"])


def test_select_layers_reads_last_all_and_names_and_names_the_model_s_layers():
    names = ["block1", "block2", "block3"]
    assert preflight.select_layers(names, "last") == [3]
    assert preflight.select_layers(names, "all") == [1, 2, 3]
    assert preflight.select_layers(names, ["block3", "block1"]) == [1, 3]
    with pytest.raises(ValueError, match="no layer 'block9'; its layers: block1, block2, block3"):
        preflight.select_layers(names, ["block9"])


def test_metrics_layers_takes_last_all_or_a_list_of_distinct_names():
    assert MetricsConfig().layers == "last"
    assert MetricsConfig(layers=["a", "b"]).layers == ["a", "b"]
    for bad in ([], ["a", "a"], "first", 3):
        with pytest.raises(ValidationError):
            MetricsConfig(layers=bad)


def test_the_default_layers_are_left_out_of_a_dumped_config():
    assert "layers" not in MetricsConfig().model_dump()
    assert "layers" not in TrialConfig().model_dump(mode="json")["metrics"]
    assert MetricsConfig(layers="all").model_dump()["layers"] == "all"


# --------------------------------------------------------------- a trial's evaluation

SYNTHETIC = {
    "name": "synthetic",
    "options": {"n_classes": 8, "n_per_class": 30, "image_size": 4, "channels": 1},
    "source_classes": [0, 1, 2, 3],
    "target_classes": [4, 5, 6, 7],
}
METRICS = {"gc_batches": 1, "gc_batch_size": 24, "gc_min_per_class": 4, "nc_per_class": 12,
           "fewshot_ways": 4, "fewshot_shots": [1, 3], "fewshot_episodes": 30,
           "fewshot_queries": 4}  # fmt: skip


def setup(model: str, *, layers="all", options=None, **metrics):
    """A briefly trained ``model`` (width 6) on tiny synthetic data, with its plan."""
    cfg = TrialConfig.from_dict(
        {
            "data": SYNTHETIC,
            "model": {"name": model, "width": 6, "options": options or {}},
            "metrics": METRICS | {"layers": layers} | metrics,
        }
    )
    data = load_dataset(cfg.data)
    torch.manual_seed(1)
    net = build_model(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes)
    _train_a_little(net, data)
    return net.eval(), data, make_plan(data, cfg.metrics), cfg.metrics


def _train_a_little(net, data) -> None:
    """A few SGD steps, so that layers differ from their initialisation (BN statistics too)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(data.train_x), data.train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def mlp_layers_by_hand(net, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each hidden layer's output and per-sample exact GC, in float64 numpy: ``h_k =
    relu(W_k h_{k-1} + b_k)``, ``J_k = D_k W_k J_{k-1}`` with ``D_k`` the ReLU's mask."""
    linears = [m for m in net.features if isinstance(m, torch.nn.Linear)]
    h = x.reshape(len(x), -1).astype(np.float64)
    jac = np.broadcast_to(np.eye(h.shape[1]), (len(x), h.shape[1], h.shape[1]))
    out = []
    for lin in linears:
        w = lin.weight.detach().double().numpy()
        b = lin.bias.detach().double().numpy()
        z = h @ w.T + b
        mask = (z > 0).astype(np.float64)
        h = z * mask
        jac = mask[:, :, None] * np.einsum("ij,bjk->bik", w, jac)
        out.append((h, np.square(jac).sum(axis=(1, 2))))
    return out


def cdnv_np(h: np.ndarray, y: np.ndarray) -> float:
    classes = sorted(set(y.tolist()))
    mean = {c: h[y == c].mean(0) for c in classes}
    var = {c: np.square(h[y == c] - mean[c]).sum(1).mean() for c in classes}
    pairs = [(var[i] + var[j]) / (2 * np.square(mean[i] - mean[j]).sum())
             for i, j in itertools.combinations(classes, 2)]  # fmt: skip
    return float(np.mean(pairs))


def nc1_np(h: np.ndarray, y: np.ndarray) -> float:
    classes = sorted(set(y.tolist()))
    means = np.stack([h[y == c].mean(0) for c in classes])
    within = sum((h[y == c] - means[i]).T @ (h[y == c] - means[i]) for i, c in enumerate(classes))
    centred = means - means.mean(0)
    between = centred.T @ centred / len(classes)
    return float(np.trace(within / len(h) @ np.linalg.pinv(between, rcond=1e-10)) / len(classes))


def geo_collapse_np(gc: np.ndarray, gc_y: np.ndarray, h: np.ndarray, y: np.ndarray) -> float:
    classes = sorted(set(y.tolist()))
    class_gc = {c: gc[gc_y == c].mean() for c in classes}
    mean = {c: h[y == c].mean(0) for c in classes}
    pairs = [(class_gc[i] + class_gc[j]) / (2 * np.square(mean[i] - mean[j]).sum())
             for i, j in itertools.combinations(classes, 2)]  # fmt: skip
    return float(np.mean(pairs))


def ncc_error_np(h: np.ndarray, y: np.ndarray, test: np.ndarray, test_y: np.ndarray) -> float:
    classes = np.array(sorted(set(y.tolist())))
    centres = np.stack([h[y == c].mean(0) for c in classes])
    dist = np.square(test[:, None, :] - centres[None]).sum(-1)
    return float((classes[dist.argmin(1)] != test_y).mean())


def test_each_mlp_layer_s_quantities_match_a_float64_reference():
    net, data, plan, cfg = setup("mlp", options={"depth": 3})
    row = evaluate(net, data, plan, cfg, epoch=2)
    layer_rows = row[LAYERS]
    assert [r["layer_name"] for r in layer_rows] == ["fc1", "fc2", "fc3"]
    assert [r["layer"] for r in layer_rows] == [1, 2, 3]
    y, test_y = data.train_y.numpy(), data.test_y.numpy()
    nc_y, gc_y = y[plan.nc_idx.numpy()], y[plan.gc_idx.numpy()]
    train = mlp_layers_by_hand(net, data.train_x.numpy())
    test = mlp_layers_by_hand(net, data.test_x.numpy())
    target = mlp_layers_by_hand(net, data.target_x.numpy())
    gc_samples = mlp_layers_by_hand(net, data.train_x[plan.gc_idx].numpy())
    for k, got in enumerate(layer_rows):
        h = train[k][0][plan.nc_idx.numpy()]
        gc = gc_samples[k][1]
        assert got["layer_dim"] == h.shape[1] == 6
        assert got["nc_cdnv"] == pytest.approx(cdnv_np(h, nc_y), rel=1e-5)
        assert got["nc1"] == pytest.approx(nc1_np(h, nc_y), rel=1e-4)
        assert got["gc"] == pytest.approx(gc.mean(), rel=1e-5)
        assert got["gc_estimator"] == "exact"
        assert got["geo_collapse"] == pytest.approx(geo_collapse_np(gc, gc_y, h, nc_y), rel=1e-5)
        assert got["ncc_test_error"] == pytest.approx(ncc_error_np(h, nc_y, test[k][0], test_y))
        t = target[k][0][plan.target_nc_idx.numpy()]
        t_y = data.target_y.numpy()[plan.target_nc_idx.numpy()]
        assert got["target_nc_cdnv"] == pytest.approx(cdnv_np(t, t_y), rel=1e-5)
        for shots in (1, 3):  # the study's episodes, on this layer's target embeddings
            acc, ci = M.fewshot_ncc(
                torch.from_numpy(target[k][0]), data.target_y, ways=4, shots=shots,
                queries=4, episodes=30, seed=0,
            )  # fmt: skip
            assert got[f"fewshot_acc_{shots}shot"] == pytest.approx(acc, abs=1e-12)
            assert got[f"fewshot_ci_{shots}shot"] == pytest.approx(ci, abs=1e-12)


def test_a_convnet_layer_s_quantities_match_float64_autograd_through_explicit_modules():
    net, data, plan, cfg = setup("convnet", options={"depth": 3}, nc=False, test=False,
                                 fewshot=False, layers=["conv2"])  # fmt: skip
    row = evaluate(net, data, plan, cfg, epoch=0)
    (got,) = row[LAYERS]
    assert (got["layer"], got["layer_name"]) == (2, "conv2")
    assert "nc_cdnv" not in got and "ncc_test_error" not in got  # as the metrics row
    conv1, bn1, _, conv2, bn2, _, pool = copy.deepcopy(list(net.features)[:7])
    assert isinstance(pool, torch.nn.MaxPool2d)  # the second layer ends with a max-pool
    conv1, bn1, conv2, bn2 = (m.double() for m in (conv1, bn1, conv2, bn2))

    def conv2_by_hand(x: torch.Tensor) -> torch.Tensor:  # (conv, BN, ReLU) x 2, max-pool, mean
        h = x
        for conv, bn in ((conv1, bn1), (conv2, bn2)):
            z = torch.nn.functional.conv2d(h, conv.weight, conv.bias, padding=1)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            shift = bn.bias - bn.running_mean * scale
            h = torch.relu(z * scale[:, None, None] + shift[:, None, None])
        return torch.nn.functional.max_pool2d(h, 2).mean(dim=(1, 2))  # (C_out,), one sample

    x = data.train_x[plan.gc_idx].double()
    gc = np.array([
        float(torch.autograd.functional.jacobian(conv2_by_hand, xi).square().sum()) for xi in x
    ])  # fmt: skip
    with torch.no_grad():
        h = torch.stack([conv2_by_hand(xi) for xi in data.train_x[plan.nc_idx].double()])
    y = data.train_y.numpy()
    assert got["gc"] == pytest.approx(gc.mean(), rel=1e-5)
    assert got["geo_collapse"] == pytest.approx(
        geo_collapse_np(gc, y[plan.gc_idx.numpy()], h.numpy(), y[plan.nc_idx.numpy()]), rel=1e-5
    )
    assert got["layer_dim"] == h.shape[1]


def last_layer_splits(net, data, plan) -> tuple[int, LayerSplits]:
    """The embedding as if it were an inner layer, for the per-layer path."""
    last = len(net.layer_names())
    emb, _ = embed_all(net, data.train_x)
    test, target = (Embedded(*embed_all(net, x), {last: embed_all(net, x)[0]})
                    for x in (data.test_x, data.target_x))  # fmt: skip
    return last, LayerSplits({last: emb[plan.nc_idx]}, test, target)


@pytest.mark.parametrize(
    ("model", "estimator"),
    [("vgg11", {}), ("resnet18", {}),
     ("convnet", {"gc_estimator": "projection", "gc_options": {"probes": 3}})],
)  # fmt: skip
def test_the_last_layer_measured_as_a_layer_equals_the_metrics_row(model, estimator):
    net, data, plan, cfg = setup(model, **estimator)
    row = evaluate(net, data, plan, cfg, epoch=3)
    last, splits = last_layer_splits(net, data, plan)
    by_layer_path = layer_quantities(net, data, plan, cfg, last, splits, epoch=3)
    assert set(by_layer_path) == {
        "gc", "gc_estimator", "geo_collapse", "nc_cdnv", "nc1", "ncc_test_error",
        "target_nc_cdnv", "fewshot_acc_1shot", "fewshot_ci_1shot", "fewshot_acc_3shot",
        "fewshot_ci_3shot",
    }  # fmt: skip
    for name, value in by_layer_path.items():
        assert value == row[name], name  # the same samples, probes and episodes: equal
    last_row = row[LAYERS][-1]
    assert last_row["layer"] == last and last_row["layer_dim"] == net.embed_dim
    assert {k: last_row[k] for k in by_layer_path} == by_layer_path


def test_an_inner_layer_wider_than_the_exact_limit_takes_the_projection_estimator(monkeypatch):
    import trainables.evaluate as E

    net, data, plan, cfg = setup("vgg11")
    widths = {r["layer"]: r["layer_dim"] for r in evaluate(net, data, plan, cfg, epoch=2)[LAYERS]}
    limit = min(widths.values())  # the narrowest layers stay exact
    monkeypatch.setattr(E, "LAYER_EXACT_MAX_P", limit)
    rows = {r["layer"]: r for r in evaluate(net, data, plan, cfg, epoch=2)[LAYERS]}
    projection = cfg.model_copy(update={"gc_estimator": "projection", "gc_options": {}})
    by_projection = {r["layer"]: r for r in evaluate(net, data, plan, projection, epoch=2)[LAYERS]}
    last = max(rows)
    wide = [k for k in rows if k != last and rows[k]["layer_dim"] > limit]
    assert wide and rows[last]["gc_estimator"] == "exact"  # the embedding: the study's
    for k, r in rows.items():
        if k in wide:  # the same probes as a study whose estimator is projection
            assert r["gc_estimator"] == by_projection[k]["gc_estimator"] != "exact"
            assert r["gc"] == by_projection[k]["gc"]
        else:
            assert r["gc_estimator"] == "exact"


def test_a_study_with_layers_reports_the_same_metrics_rows_as_one_without():
    net, data, plan, cfg = setup("vgg11")
    plain = cfg.model_copy(update={"layers": "last"})
    with_layers = evaluate(net, data, plan, cfg, epoch=1)
    without = evaluate(net, data, plan, plain, epoch=1)
    assert LAYERS not in without
    assert {k: v for k, v in with_layers.items() if k != LAYERS} == without


def test_inner_layers_keep_only_the_rows_asked_for_from_one_pass():
    net, data, _, _ = setup("vgg11")
    rows = torch.tensor([0, 3, 4, 50, len(data.train_x) - 1])
    got = embed_layers(net, data.train_x, [2, 5], rows=rows)
    with torch.no_grad():
        outputs = net.layer_outputs(data.train_x)
    assert list(got.inner) == [2]  # the last layer is the embedding itself
    assert torch.equal(got.inner[2], outputs[1][rows])
    assert torch.equal(got.emb, outputs[-1])


def test_a_trial_reports_the_layers_it_selects_and_refuses_one_its_model_lacks():
    config = TrialConfig.from_dict(
        {
            "data": SYNTHETIC,
            "model": {"name": "vgg11", "width": 4},
            "train": {"epochs": 1, "batch_size": 32, "device": "cpu"},
            "metrics": METRICS | {"layers": ["block4", "block2"]},
        }
    ).model_dump()
    reporter = MemoryReporter()
    run(config, reporter)
    assert [[r["layer_name"] for r in row[LAYERS]] for row in reporter.rows] == [
        ["block2", "block4"]
    ] * 2
    assert LAYERS not in reporter.checkpoints[-1]["last_row"]
    config["metrics"]["layers"] = ["block9"]
    names = "block1, block2, block3, block4, block5"
    with pytest.raises(ValueError, match=rf"the model has no layer 'block9'; its layers: {names}"):
        run(config, MemoryReporter())
