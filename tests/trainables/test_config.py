"""Trial configuration: defaults, unknown keys, impossible values, overrides, registries."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from trainables.config import TrialConfig
from trainables.overrides import apply_overrides, parse_value
from trainables.registry import Registry, UnknownNameError


def test_defaults_follow_the_spec_centre_config():
    cfg = TrialConfig.from_dict({})
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.l2, cfg.train.momentum) == (
        0.01,
        256,
        0.0,
        0.0,
    )
    assert cfg.train.optimizer == "sgd" and cfg.train.lr_schedule == "constant"
    assert cfg.metrics.fewshot_ways == 5 and cfg.metrics.fewshot_episodes == 600
    assert cfg.metrics.fewshot_shots == [1, 5] and cfg.metrics.fewshot_queries == 15


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"train": {"lr": 0}}, "train.lr"),
        ({"train": {"lr": -1.0}}, "train.lr"),
        ({"train": {"batch_size": 0}}, "train.batch_size"),
        ({"train": {"momentum": 1.0}}, "train.momentum"),
        ({"train": {"l2": -1e-4}}, "train.l2"),
        ({"train": {"optimizer": "adam"}}, "train.optimizer"),
        ({"train": {"learning_rate": 0.1}}, "train.learning_rate"),
        ({"metrics": {"every": 0}}, "metrics.every"),
        ({"metrics": {"nc_per_class": 1}}, "metrics.nc_per_class"),  # a variance needs two
        ({"model": {"widht": 8}}, "model.widht"),
        ({"train": {"gc_reg": {"alpha": -1}}}, "train.gc_reg.alpha"),
    ],
)
def test_bad_values_and_unknown_keys_are_rejected_naming_the_field(config, field):
    with pytest.raises(ValidationError) as info:
        TrialConfig.from_dict(config)
    locs = {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert field in locs


def test_overlapping_source_and_target_classes_are_rejected():
    with pytest.raises(ValidationError, match="overlap"):
        TrialConfig.from_dict({"data": {"source_classes": [0, 1], "target_classes": [1, 2]}})


def test_overrides_parse_toml_literals_into_nested_tables():
    out = apply_overrides(
        {"train": {"lr": 0.01}},
        [
            "train.lr=0.1",
            "train.seed=3",
            "data.source_classes=[0, 1]",
            "train.bf16=true",
            "model.name=vgg11",
            "train.gc_reg.alpha=1e-6",
        ],
    )
    assert out == {
        "train": {"lr": 0.1, "seed": 3, "bf16": True, "gc_reg": {"alpha": 1e-6}},
        "data": {"source_classes": [0, 1]},
        "model": {"name": "vgg11"},
    }
    assert parse_value('"a b"') == "a b" and parse_value("cifar10") == "cifar10"


def test_an_override_without_equals_sign_is_an_error():
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["train.lr"])


def test_registry_rejects_duplicates_and_lists_known_names():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    reg.add("b", 2)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 3)
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; known: a, b"):
        reg.get("c")


def test_a_lazy_entry_is_imported_on_first_get_only():
    """Checking a name imports nothing; ``get`` imports the entry's module once."""
    code = (
        "import sys\n"
        "from trainables.registry import Registry\n"
        "reg = Registry('widget')\n"
        "reg.add_lazy('wave', 'wave:open')\n"
        "assert 'wave' in reg and reg.names() == ['wave']\n"
        "assert 'wave' not in sys.modules\n"
        "opener = reg.get('wave')\n"
        "import wave\n"
        "assert opener is wave.open and reg.get('wave') is opener\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_a_lazy_entry_needs_module_and_attribute():
    reg: Registry[int] = Registry("widget")
    with pytest.raises(ValueError, match="is not 'package\\.module:attr'"):
        reg.add_lazy("a", "json.dumps")
    reg.add_lazy("a", "json:dumps")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 1)


def test_every_built_in_entry_resolves_to_its_object():
    """The registries' lazy paths point at real objects (a typo would only show in a run)."""
    from trainables.data import DATASETS
    from trainables.metrics.estimators import ESTIMATORS, GCEstimator
    from trainables.models import MODELS

    for registry in (DATASETS, MODELS):
        assert all(callable(registry.get(name)) for name in registry)
    for name in ESTIMATORS:
        cls = ESTIMATORS.get(name)
        assert issubclass(cls, GCEstimator) and cls.name == name


def test_an_entry_may_declare_its_option_keys():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1, options=("size", "colour"))
    reg.add_lazy("b", "json:dumps", options=())
    reg.add("c", 3)
    assert reg.option_names("a") == {"size", "colour"} and reg.option_names("b") == frozenset()
    assert reg.option_names("c") is None  # declared nothing: not checked
    with pytest.raises(TypeError, match="not a str"):
        reg.add("d", 4, options="size")


class _Seen(Exception):
    """Raised by the spy below with the option keys a loader or factory accepts."""


def _spy(_name, _options, defaults):
    raise _Seen(frozenset(defaults))


def test_every_built_in_entry_declares_the_options_it_accepts(monkeypatch):
    """What ``gcnc validate`` checks (the declared keys) is what each loader and factory
    accepts (the defaults it hands to ``parse_options``)."""

    from trainables.config import DataConfig
    from trainables.data import DATASETS, preflight
    from trainables.models import MODELS

    monkeypatch.setattr(preflight, "parse_options", _spy)  # every loader checks through it
    for name in DATASETS:
        loader = DATASETS.get(name)
        with pytest.raises(_Seen) as seen:
            loader(DataConfig(name=name))
        assert seen.value.args[0] == DATASETS.option_names(name), name
    from trainables.models import preflight as model_preflight

    monkeypatch.setattr(model_preflight, "parse_options", _spy)  # every factory checks through it
    for name in MODELS:
        factory = MODELS.get(name)
        with pytest.raises(_Seen) as seen:
            factory((3, 32, 32), num_classes=10, width=None, options={})
        assert seen.value.args[0] == MODELS.option_names(name), name
