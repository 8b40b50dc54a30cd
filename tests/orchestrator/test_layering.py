"""Imports flow one way, and only ``orchestrator/cluster/`` imports ray."""

from __future__ import annotations

import ast
import gc
import subprocess
import sys
from pathlib import Path

import pytest
from gcnc_testkit import fresh_python

from orchestrator import cli

ROOT = Path(__file__).resolve().parents[2]


def imported_roots(package: str) -> dict[str, set[str]]:
    """For each module file of ``package``, the top-level names it imports."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


def test_only_the_cluster_folder_imports_ray():
    importers = {f for f, names in imported_roots("orchestrator").items() if "ray" in names}
    assert importers and all(f.startswith("orchestrator/cluster/") for f in importers), importers


@pytest.mark.parametrize("package", ["trainables", "analysis"])
def test_trainables_and_analysis_never_import_ray(package):
    offenders = {f for f, names in imported_roots(package).items() if "ray" in names}
    assert offenders == set()


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("trainables", {"orchestrator", "analysis", "studyfiles"}),
        ("analysis", {"orchestrator", "trainables"}),
        ("studyfiles", {"orchestrator", "analysis", "trainables"}),
    ],
)
def test_imports_flow_one_way(package, forbidden):
    offenders = {
        f: names & forbidden for f, names in imported_roots(package).items() if names & forbidden
    }
    assert offenders == {}


def test_the_contract_package_imports_nothing_heavier_than_pyarrow():
    """``studyfiles`` (the on-disk contract): the standard library, numpy and pyarrow."""
    allowed = {"pyarrow", "numpy", "studyfiles", "__future__"} | set(sys.stdlib_module_names)
    imported = {n for names in imported_roots("studyfiles").values() for n in names}
    assert imported <= allowed, imported - allowed
    done = fresh_python(
        "import sys, studyfiles, studyfiles.schema, studyfiles.tables, studyfiles.layout\n"
        "heavy = {'pandas', 'torch', 'ray', 'pydantic', 'orchestrator', 'analysis'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_validate_and_status_do_not_load_ray(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text('trainable = "testing.sleep"\n[sweep]\nseeds = [0, 1]\n')
    code = (
        "import sys\n"
        "from orchestrator.cli import main\n"
        f"rc = main(['validate', {str(study)!r}])\n"
        "assert 'ray' not in sys.modules, 'validate imported ray'\n"
        "sys.exit(rc)\n"
    )
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ok: {study}: study s, 2 trials"


def test_validating_a_study_of_the_trainable_does_not_load_torch():
    """The driver checks dataset, model and estimator names without importing torch."""
    study = ROOT / "studies" / "quickstart.toml"
    code = (
        "import sys\n"
        "from orchestrator.cli import main\n"
        f"rc = main(['validate', {str(study)!r}])\n"
        "import orchestrator.cluster\n"
        "assert 'torch' not in sys.modules, 'the driver imported torch'\n"
        "sys.exit(rc)\n"
    )
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {study}: study quickstart")


def test_python_dash_m_orchestrator_is_gcnc():
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for command in ("run", "resume", "status", "validate", "report", "analyze"):
        assert command in done.stdout


def test_reading_trial_configs_does_not_load_torch():
    """Validation's config models and ``gcnc status`` need no torch; the trainable does."""
    code = (
        "import sys\n"
        "import trainables\n"
        "from orchestrator import cli\n"
        "trainables.TrialConfig.from_dict({})\n"
        "assert 'torch' not in sys.modules, 'reading a config imported torch'\n"
        "assert callable(trainables.run) and 'torch' in sys.modules\n"
    )
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr


def test_only_the_program_freezes_its_objects_before_exit(tmp_path):
    """``main()`` as the program (no argv) freezes what is left for a quick exit; a call
    from other code (argv given) leaves the garbage collector as it was."""
    study = tmp_path / "s.toml"
    study.write_text('trainable = "testing.sleep"\n')
    before = gc.get_freeze_count()
    assert cli.main(["validate", str(study)]) == 0
    assert gc.get_freeze_count() == before
    code = (
        "import gc, sys\n"
        "from orchestrator.cli import main\n"
        f"sys.argv = ['gcnc', 'validate', {str(study)!r}]\n"
        "rc = main()\n"
        "print(gc.get_freeze_count() > 0)\n"
        "sys.exit(rc)\n"
    )
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "True"
