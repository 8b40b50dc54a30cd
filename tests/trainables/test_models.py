"""The model registry: shapes, the embedding/head contract, torch.func, references."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vgg import cfgs as tv_vgg_configs
from torchvision.models.vgg import make_layers as tv_vgg_layers

from trainables.config import ModelConfig
from trainables.models import MODELS, EmbeddingClassifier, build_model
from trainables.registry import UnknownNameError

NAMES = ["mlp", "convnet", "vgg11", "vgg13", "resnet18", "resnet50"]
SMALL_WIDTH = {"mlp": 16, "convnet": 8, "vgg11": 4, "vgg13": 4, "resnet18": 4, "resnet50": 2}
# p as a function of width, and p at the default width (SPEC §2, §5).
EMBED_DIM = {
    "mlp": lambda w: w,
    "convnet": lambda w: w,
    "vgg11": lambda w: 8 * w,
    "vgg13": lambda w: 8 * w,
    "resnet18": lambda w: 8 * w,
    "resnet50": lambda w: 32 * w,
}
DEFAULT_EMBED_DIM = {
    "mlp": 256,
    "convnet": 128,
    "vgg11": 512,
    "vgg13": 512,
    "resnet18": 512,
    "resnet50": 2048,
}
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
CASES = [(n, s) for n in NAMES for s in SHAPES] + [
    (n, (3, 84, 84)) for n in ["vgg11", "vgg13", "resnet18", "resnet50"]
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(name: str, shape, *, num_classes: int = 5, seed: int = 0, **options):
    torch.manual_seed(seed)
    config = ModelConfig(name=name, width=SMALL_WIDTH[name], options=options)
    return build_model(config, input_shape=shape, num_classes=num_classes).eval()


def randomize_bn_stats(model: nn.Module, *, seed: int = 1) -> None:
    """Give BatchNorm non-trivial running statistics and affine maps (eval mode uses them)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def test_registry_holds_every_documented_model():
    assert MODELS.names() == sorted(NAMES)


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_logits_and_embedding_shapes_and_forward_is_head_of_embed(name, shape):
    model = small(name, shape, num_classes=7)
    x = torch.randn(3, *shape)  # (B, C, H, W)
    with torch.no_grad():
        z = model.embed(x)  # (B, p)
        logits = model(x)  # (B, 7)
    p = EMBED_DIM[name](SMALL_WIDTH[name])
    assert isinstance(model, EmbeddingClassifier)
    assert z.shape == (3, p) and model.embed_dim == p
    assert logits.shape == (3, 7)
    assert model.head.in_features == p and model.head.out_features == 7
    torch.testing.assert_close(logits, model.head(z), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_default_width_gives_documented_embedding_dim(name):
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        model = build_model(ModelConfig(name=name), input_shape=(3, 32, 32), num_classes=10)
        z = model.eval().embed(torch.empty(2, 3, 32, 32))  # (B, p)
    assert z.shape == (2, DEFAULT_EMBED_DIM[name])
    assert model.embed_dim == DEFAULT_EMBED_DIM[name]


@pytest.mark.parametrize(("name", "shape"), [(n, s) for n in NAMES for s in SHAPES[::2]])
def test_eval_outputs_do_not_depend_on_the_rest_of_the_batch(name, shape):
    model = small(name, shape).double()
    randomize_bn_stats(model)
    x = torch.randn(5, *shape, dtype=torch.float64)  # (B, C, H, W)
    with torch.no_grad():
        batched = model(x)  # (B, C)
        alone = torch.cat([model(x[i : i + 1]) for i in range(5)])  # (B, C)
    torch.testing.assert_close(batched, alone, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_jacrev_of_embedding_matches_per_sample_autograd(name):
    shape = (1, 8, 8)
    model = small(name, shape).double()
    randomize_bn_stats(model)
    x = torch.randn(3, *shape, dtype=torch.float64)  # (B, C, H, W)

    def embed_one(xi: torch.Tensor) -> torch.Tensor:
        return model.embed(xi.unsqueeze(0)).squeeze(0)  # (C, H, W) -> (p,)

    jac = torch.func.vmap(torch.func.jacrev(embed_one))(x)  # (B, p, C, H, W)
    ref = torch.stack([torch.autograd.functional.jacobian(embed_one, xi) for xi in x])
    assert jac.shape == (3, model.embed_dim, *shape)
    assert ref.abs().sum() > 0
    torch.testing.assert_close(jac, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_same_weights_and_another_seed_does_not(name):
    shape = (3, 32, 32)
    a, b, c = (small(name, shape, seed=s).state_dict() for s in (0, 0, 1))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_the_same_outputs(name):
    shape = (3, 32, 32)
    model = small(name, shape)
    randomize_bn_stats(model)
    x = torch.randn(4, *shape)  # (B, C, H, W)
    with torch.no_grad():
        ref = model(x)  # (B, C)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))  # (B, C)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_runs_and_stays_close_to_float32(name):
    shape = (3, 32, 32)
    model = small(name, shape)
    x = torch.randn(4, *shape)  # (B, C, H, W)
    with torch.no_grad():
        ref = model(x)  # (B, C)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)  # (B, C), bf16 matmuls and convs
    assert out.dtype == torch.bfloat16  # autocast took effect
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max() + 1e-3


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownNameError) as err:
        build_model(ModelConfig(name="vgg19"), input_shape=(3, 32, 32), num_classes=10)
    assert "vgg19" in str(err.value)
    assert all(name in str(err.value) for name in NAMES)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("mlp", {"dept": 3}, r"unknown option.*'dept'.*known: depth"),
        ("convnet", {"depth": 0}, "depth must be a positive int"),
        ("convnet", {"batchnorm": "yes"}, "batchnorm must be true or false"),
        ("vgg11", {"pad_to": 16}, "pad_to must be"),
        ("resnet18", {"stem": "tiny"}, r"stem must be one of \['auto', 'cifar', 'imagenet'\]"),
        ("resnet50", {"stem": "cifar", "zero_init": True}, r"unknown option.*'zero_init'"),
    ],
)
def test_bad_options_raise_value_error_naming_the_problem(name, options, match):
    config = ModelConfig(name=name, width=4, options=options)
    with pytest.raises(ValueError, match=match):
        build_model(config, input_shape=(1, 28, 28), num_classes=10)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((28, 28), "three positive ints"),
        ((1, 0, 28), "three positive ints"),
        ((1.0, 28, 28), "three positive ints"),
        ((32, 32, 3), r"looks like \(H, W, C\): use \(3, 32, 32\)"),
    ],
)
def test_bad_input_shape_raises_value_error(shape, match):
    with pytest.raises(ValueError, match=match):
        build_model(ModelConfig(name="convnet", width=8), input_shape=shape, num_classes=10)


def test_bad_num_classes_raises_value_error():
    with pytest.raises(ValueError, match="num_classes"):
        build_model(ModelConfig(name="mlp", width=8), input_shape=(1, 8, 8), num_classes=0)


def test_vgg_pads_28_to_32_with_zeros():
    x = torch.randn(2, 1, 28, 28)  # (B, 1, 28, 28)
    padded = nn.functional.pad(x, (2, 2, 2, 2))  # (B, 1, 32, 32)
    on_28 = small("vgg11", (1, 28, 28), seed=3)
    on_32 = small("vgg11", (1, 32, 32), seed=3)
    no_pad = small("vgg11", (1, 28, 28), seed=3, pad_to=None)
    with torch.no_grad():
        torch.testing.assert_close(on_28.embed(x), on_32.embed(padded))
        assert not torch.allclose(no_pad.embed(x), on_32.embed(padded))


@pytest.mark.parametrize(("shape", "pools"), [((1, 8, 8), 3), ((1, 28, 28), 5), ((3, 32, 32), 5)])
def test_vgg_skips_the_pools_that_would_go_below_one_pixel(shape, pools):
    model = small("vgg13", shape)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == pools


@pytest.mark.parametrize(
    ("shape", "stem", "kernel", "maxpool"),
    [
        ((3, 32, 32), "auto", 3, False),
        ((1, 8, 8), "auto", 3, False),
        ((3, 84, 84), "auto", 7, True),
        ((3, 84, 84), "cifar", 3, False),
        ((3, 32, 32), "imagenet", 7, True),
    ],
)
def test_resnet_stem_follows_the_input_size_or_the_option(shape, stem, kernel, maxpool):
    model = small("resnet18", shape, stem=stem)
    assert model.features.conv1.kernel_size == (kernel, kernel)
    assert model.features.conv1.in_channels == shape[0]
    assert isinstance(model.features.maxpool, nn.MaxPool2d) == maxpool


def test_convnet_options_set_depth_and_batchnorm():
    plain = small("convnet", (1, 8, 8), depth=3, batchnorm=False)
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and all(c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert [c.out_channels for c in convs] == [4, 8, 8]
    default = small("convnet", (1, 8, 8))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in default.modules()) == 5


def test_mlp_depth_sets_the_number_of_hidden_layers():
    model = small("mlp", (1, 8, 8), depth=3)
    linears = [m for m in model.features.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 16), (16, 16), (16, 16)]


def _torchvision_resnet(name: str, stem: str) -> nn.Module:
    tv = getattr(torchvision.models, name)(weights=None, num_classes=10)
    if stem == "cifar":  # the standard CIFAR adaptation of torchvision's ResNet
        tv.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        tv.maxpool = nn.Identity()
    return tv


@pytest.mark.parametrize(
    ("name", "stem"), [("resnet18", "cifar"), ("resnet18", "imagenet"), ("resnet50", "cifar")]
)
def test_resnet_matches_torchvision_given_the_same_weights(name, stem):
    torch.manual_seed(0)
    tv = _torchvision_resnet(name, stem).eval()
    randomize_bn_stats(tv)
    config = ModelConfig(name=name, options={"stem": stem})
    ours = build_model(config, input_shape=(3, 32, 32), num_classes=10).eval()
    state = {
        (f"head.{k[3:]}" if k.startswith("fc.") else f"features.{k}"): v
        for k, v in tv.state_dict().items()
    }
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 32, 32)  # (B, C, H, W)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "config"), [("vgg11", "A"), ("vgg13", "B")])
def test_vgg_matches_torchvision_features_given_the_same_weights(name, config):
    torch.manual_seed(0)
    tv = tv_vgg_layers(tv_vgg_configs[config], batch_norm=True).eval()
    randomize_bn_stats(tv)
    ours = build_model(ModelConfig(name=name), input_shape=(3, 32, 32), num_classes=10).eval()
    ours.features.layers.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)  # (B, C, H, W)
    with torch.no_grad():
        torch.testing.assert_close(ours.embed(x), tv(x).flatten(1), rtol=1e-4, atol=1e-5)
