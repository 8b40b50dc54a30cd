"""Every exception the project defines survives pickling (a trial's error crosses from a
Ray worker to the driver that way), with its message and its fields."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import pickle
import signal

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("studyfiles", "orchestrator", "trainables", "analysis")

#: One instance of each exception class, by its qualified name.
SAMPLES = {
    "studyfiles.errors.InputError": lambda c: c("train.lr", "must be > 0", "give e.g. 0.01"),
    "trainables.data.preflight.DataConfigError": lambda c: c("data.data_root", "no files"),
    "orchestrator.interrupts.StopNow": lambda c: c(signal.SIGTERM),
    "trainables.registry.UnknownNameError": lambda c: c("no model 'vgg99'"),
    "trainables.evaluate.NonFiniteError": lambda c: c("loss is nan"),
    "trainables.reporter.TrialInterrupted": lambda c: c("stopped at epoch 3"),
    "analysis.report.PngExportError": lambda c: c("kaleido missing"),
    "analysis.study.ResultsError": lambda c: c("no study.json"),
    "analysis.figures._base.NotMeasured": lambda c: c("bound figure: nc_bound not measured"),
}


def _project_exceptions() -> dict[str, type]:
    """Every exception class defined in the project's modules (those that import here)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            name = name.removesuffix(".__init__")
            if name.endswith("__main__"):
                continue
            try:
                module = importlib.import_module(name)
            except ImportError:  # an optional dependency (e.g. ray where it is not wanted)
                continue
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if issubclass(obj, BaseException) and obj.__module__ == name:
                    found[f"{name}.{obj.__qualname__}"] = obj
    return found


def test_every_project_exception_has_a_sample():
    assert set(_project_exceptions()) <= set(SAMPLES), "add a sample for each new exception"


@pytest.mark.parametrize("qualname", sorted(SAMPLES))
def test_an_exception_survives_pickling_whole(qualname):
    module, _, name = qualname.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    err = SAMPLES[qualname](cls)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err)
    assert vars(back) == vars(err)  # its fields (field, problem, fix, signum, …)
