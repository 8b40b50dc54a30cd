"""Synthetic study directories shared by the analysis tests."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # any pytest import mode

from synthetic_study import SyntheticSpec, write_synthetic_study

from analysis import load_results


@pytest.fixture(scope="session")
def lr_study_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An lr sweep with transfer metrics, the bound, a diverged and a running trial."""
    spec = SyntheticSpec(name="lr-sweep", diverged=1, bound=True, seeds=(0, 1, 2, 3))
    return write_synthetic_study(tmp_path_factory.mktemp("lr"), spec)


@pytest.fixture(scope="session")
def lr_study(lr_study_dir: str):
    return load_results(lr_study_dir)


@pytest.fixture(scope="session")
def source_only_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A batch-size sweep that measured no transfer quantities and no bound."""
    spec = SyntheticSpec(
        name="batch-sweep", lrs=(0.02,), batch_sizes=(32, 128, 512), transfer=False, shots=()
    )
    return write_synthetic_study(tmp_path_factory.mktemp("batch"), spec)
