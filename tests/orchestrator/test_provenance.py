"""study.json records what produced a study: each dataset's files (sha256) or generator and
seed, its notes and normalisation, and the code's commit, dirty flag and diff."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import fabricate  # tests/fixtures: dataset files in the real formats
import pytest
from gcnc_testkit import fresh_python, write_study

import analysis
from orchestrator import provenance
from orchestrator.provenance import code_state, open_study_dir, study_info
from orchestrator.studyfile import load_spec
from studyfiles import StudyDir
from trainables.config import DataConfig
from trainables.data import fingerprint

ROOT = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def study(folder: Path, text: str, name: str = "prov"):
    return load_spec(write_study(folder, f'name = "{name}"\n{text}', filename=f"{name}.toml"))


# ---- datasets ------------------------------------------------------------------------------


def test_each_file_read_is_recorded_with_its_sha256_and_hashed_once(tmp_path, monkeypatch):
    data = tmp_path / "data"
    fabricate.cifar10(data)
    fabricate.mnist(data / "MNIST" / "raw", gz=True)
    spec = study(
        tmp_path,
        f'[data]\nname = "cifar10"\ndata_root = "{data}"\n'
        f'[sweep.grid]\ndata.name = ["cifar10", "mnist"]\ndata.split_seed = [0, 1]\n',
    )
    hashed: list[Path] = []
    real = fingerprint.sha256_file
    monkeypatch.setattr(fingerprint, "sha256_file", lambda p: hashed.append(p) or real(p))

    records = study_info(spec)["datasets"]

    assert [(r["name"], r["data"]["split_seed"]) for r in records] == [
        ("cifar10", 0),
        ("cifar10", 1),
        ("mnist", 0),
        ("mnist", 1),
    ]
    for record in records:
        files = record["files"]
        assert files["present"] and files["missing"] is None and files["root"] == str(data)
        assert record["generator"] is None and record["problem"] is None
        for entry in files["files"]:
            path = data / entry["path"]
            assert entry["sha256"] == sha256(path) and entry["size"] == path.stat().st_size
    cifar, mnist = records[0], records[2]
    assert [e["path"] for e in cifar["files"]["files"]][-1] == "cifar-10-batches-py/batches.meta"
    assert len(cifar["files"]["files"]) == 7
    assert all(e["path"].startswith("MNIST/raw/") for e in mnist["files"]["files"])
    assert all(e["path"].endswith("-ubyte.gz") for e in mnist["files"]["files"])  # as on disk
    assert len(hashed) == len(set(hashed)) == 7 + 4  # each file once for the study
    assert cifar["normalization"] == {
        "mean": [0.4914, 0.4822, 0.4465],
        "std": [0.2470, 0.2435, 0.2616],
        "fitted_on": cifar["normalization"]["fitted_on"],
    }
    assert cifar["normalization"]["fitted_on"].startswith("fixed: ")
    assert cifar["notes"] == [] and mnist["notes"] == []


def test_mini_imagenet_folders_are_recorded_as_one_manifest_per_class_folder(tmp_path):
    data = tmp_path / "data"
    fabricate.mini_imagenet_folders(data, per_class=2, size=8)
    spec = study(
        tmp_path,
        f'[data]\nname = "mini_imagenet"\ndata_root = "{data}"\n[metrics]\nfewshot_ways = 3\n',
    )
    (record,) = study_info(spec)["datasets"]
    folders = record["files"]["folders"]
    assert record["files"]["files"] == [] and len(folders) == 4 + 2 + 3
    for entry in folders:
        images = sorted(p for p in (data / entry["path"]).iterdir() if p.suffix != ".txt")
        lines = "".join(f"{p.name}\t{p.stat().st_size}\t{sha256(p)}\n" for p in images)
        assert entry["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
        assert entry["files"] == len(images) == 2
        assert entry["size"] == sum(p.stat().st_size for p in images)
    assert record["notes"] == [
        "source test set: a seeded hold-out (split_seed=0) of 0.167 of each source class's images"
    ]


def test_files_missing_on_this_machine_are_recorded_not_an_error(tmp_path):
    empty = tmp_path / "elsewhere"
    spec = study(tmp_path, f'[data]\nname = "cifar_fs"\ndata_root = "{empty}"\nsplit_seed = 3\n')
    (record,) = study_info(spec)["datasets"]
    assert record["files"] == {
        "root": str(empty),
        "present": False,
        "missing": f"not on this machine (looked in {empty / 'cifar-100-python'})",
        "files": [],
    }
    # what needs no file is still recorded: the seeded split's note and the fixed constants
    (note,) = record["notes"]
    assert "seeded split (split_seed=3)" in note and "not the official" in note
    assert record["normalization"]["mean"] == [0.5071, 0.4865, 0.4409]
    assert "target classes included" in record["normalization"]["fitted_on"]


def test_a_generated_dataset_records_its_generator_seed_and_fitted_constants(tmp_path):
    from trainables.data import load_dataset  # the loader, in this process, as a trial would

    options = {"n_classes": 6, "n_per_class": 10, "image_size": 8, "seed": 3}
    spec = study(
        tmp_path,
        '[data]\nname = "glyphs"\nsource_classes = [0, 1, 2, 3]\ntarget_classes = [4, 5]\n'
        "[data.options]\nn_classes = 6\nn_per_class = 10\nimage_size = 8\nseed = 3\n"
        "[metrics]\nfewshot_ways = 2\n",
    )
    (record,) = study_info(spec)["datasets"]
    assert record["files"] is None and record["problem"] is None and record["notes"] == []
    generator = record["generator"]
    assert generator["seed"] == 3 and generator["seed_key"] == "data.options.seed"
    assert generator["options"]["n_classes"] == 6 and "no fonts" in generator["name"]
    loaded = load_dataset(DataConfig(**record["data"]))
    assert record["data"]["options"] == options
    assert record["normalization"]["mean"] == list(loaded.normalization.mean)
    assert record["normalization"]["std"] == list(loaded.normalization.std)
    assert record["normalization"]["fitted_on"].startswith("fitted: ")
    assert "source classes' training images" in record["normalization"]["fitted_on"]


def test_synthetic_and_digits_record_their_seed_and_digits_its_bundled_file(tmp_path):
    synthetic = study(tmp_path, '[data]\nname = "synthetic"\nsplit_seed = 5\n', name="syn")
    (record,) = study_info(synthetic)["datasets"]
    assert record["generator"]["seed"] == 5 and record["generator"]["seed_key"] == "data.split_seed"
    assert record["files"] is None and len(record["normalization"]["mean"]) == 1

    (record,) = study_info(study(tmp_path, "[data]\nsplit_seed = 2\n", name="dig"))["datasets"]
    assert record["name"] == "digits" and record["generator"]["seed"] == 2
    assert record["generator"]["package"].startswith("scikit-learn ")
    (entry,) = record["files"]["files"]
    path = Path(record["files"]["root"]) / entry["path"]
    assert path.name == "digits.csv.gz" and entry["sha256"] == sha256(path)


def test_a_loader_that_cannot_run_is_recorded_as_a_problem(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    spec = study(tmp_path, '[data]\nname = "synthetic"\nsplit_seed = 77\n')
    (record,) = study_info(spec)["datasets"]
    assert record["problem"].startswith("could not describe the dataset in a child process")
    assert record["normalization"] is None and record["notes"] is None
    assert record["generator"]["seed"] == 77  # what needs no loader is still recorded


def test_a_study_of_another_trainable_records_no_dataset(tmp_path):
    spec = study(tmp_path, 'trainable = "testing.sleep"\n')
    assert study_info(spec)["datasets"] == []


def test_the_driver_records_datasets_without_importing_torch(tmp_path):
    data = tmp_path / "data"
    fabricate.cifar10(data)
    path = write_study(
        tmp_path, f'name = "t"\n[data]\nname = "cifar10"\ndata_root = "{data}"\n', filename="t.toml"
    )
    code = (
        "import sys\n"
        "from orchestrator.provenance import study_info\n"
        "from orchestrator.studyfile import load_spec\n"
        f"info = study_info(load_spec({str(path)!r}))\n"
        "assert 'torch' not in sys.modules, 'the driver imported torch'\n"
        "print(info['datasets'][0]['files']['present'])\n"
    )
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


# ---- code ----------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A git checkout with one commit, standing in for gcnc's own source tree."""
    folder = tmp_path / "src"
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "model.py").write_text("WIDTH = 16\n")
    (folder / ".gitignore").write_text("runs/\n")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "first")
    monkeypatch.setattr(provenance, "SOURCE_ROOT", folder)
    return folder


def test_a_dirty_tree_records_dirty_and_writes_the_diff_beside_study_json(tmp_path, repo):
    (repo / "model.py").write_text("WIDTH = 32\n")
    (repo / "new_metric.py").write_text("x = 1\n")
    (repo / "runs").mkdir()
    (repo / "runs" / "ignored.txt").write_text("ignored\n")
    sdir = StudyDir.of(str(tmp_path / "out"), "prov")

    info, existed = open_study_dir(sdir, study(tmp_path, 'trainable = "testing.sleep"\n'))

    assert not existed
    code = info["code"]
    assert code["commit"] == git(repo, "rev-parse", "HEAD") and code["dirty"] is True
    assert code["untracked"] == ["new_metric.py"] and code["diff"] == "code.diff"
    assert info["code_version"].endswith(f"(git {code['commit'][:12]}+dirty)")
    diff = (tmp_path / "out" / "prov" / "code.diff").read_bytes()
    assert code["diff_sha256"] == hashlib.sha256(diff).hexdigest()
    text = diff.decode()
    assert "-WIDTH = 16" in text and "+WIDTH = 32" in text and "#   new_metric.py" in text
    assert "ignored" not in text
    assert json.loads((tmp_path / "out" / "prov" / "study.json").read_text()) == info


def rebuilt(repo: Path, diff: Path, into: Path) -> Path:
    """The commit recorded for ``repo``, checked out afresh at ``into``, with ``diff`` applied."""
    git(into.parent, "clone", "-q", str(repo), str(into))
    git(into, "apply", "--whitespace=nowarn", str(diff))
    return into


def test_a_dirty_tree_with_new_files_is_rebuilt_from_its_diff(tmp_path, repo):
    (repo / "model.py").write_text("WIDTH = 32\n")
    (repo / "new_metric.py").write_text("x = 1\ny = 2")  # no newline at the end
    (repo / "pkg").mkdir()
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "table.bin").write_bytes(bytes(range(256)) * 4)
    sdir = StudyDir.of(str(tmp_path / "out"), "prov")

    info, _ = open_study_dir(sdir, study(tmp_path, 'trainable = "testing.sleep"\n'))

    assert info["code"]["untracked"] == ["new_metric.py", "pkg/"]
    diff = tmp_path / "out" / "prov" / "code.diff"
    assert "#   pkg/table.bin: stored as a git binary patch" in diff.read_text(errors="replace")
    copy = rebuilt(repo, diff, tmp_path / "copy")
    for name in ("model.py", "new_metric.py", "pkg/__init__.py", "pkg/table.bin"):
        assert (copy / name).read_bytes() == (repo / name).read_bytes(), name


def test_untracked_files_past_a_cap_are_named_with_their_size_not_stored(
    tmp_path, repo, monkeypatch
):
    monkeypatch.setattr(provenance, "UNTRACKED_FILE_BYTES", 100)
    monkeypatch.setattr(provenance, "UNTRACKED_TOTAL_BYTES", 150)
    (repo / "a_big.txt").write_text("b" * 101)
    (repo / "b_fits.txt").write_text("f" * 100)
    (repo / "c_over_total.txt").write_text("o" * 60)
    (repo / "d_fits_after.txt").write_text("s" * 50)

    text = code_state(repo).diff.decode()

    assert "#   a_big.txt: not stored (101 bytes, over the cap of 100 per file)" in text
    assert "#   c_over_total.txt: not stored (60 bytes, past the cap of 150 bytes" in text
    assert "+" + "f" * 100 in text and "+" + "s" * 50 in text
    assert "+bbb" not in text and "+ooo" not in text


def test_an_untracked_file_git_cannot_diff_is_named_and_the_study_still_opens(
    tmp_path, repo, monkeypatch
):
    monkeypatch.setattr(provenance, "_NEW_FILE", ("diff", "--no-index", "--no-such-option"))
    (repo / "new_metric.py").write_text("x = 1\n")
    (repo / "model.py").write_text("WIDTH = 32\n")
    sdir = StudyDir.of(str(tmp_path / "out"), "prov")

    info, _ = open_study_dir(sdir, study(tmp_path, 'trainable = "testing.sleep"\n'))

    text = (tmp_path / "out" / "prov" / "code.diff").read_text()
    assert info["code"]["dirty"] is True and "+WIDTH = 32" in text
    assert "#   new_metric.py: not stored (git diff failed)" in text


def test_a_clean_tree_records_its_commit_and_no_diff(tmp_path, repo):
    sdir = StudyDir.of(str(tmp_path / "out"), "prov")
    info, _ = open_study_dir(sdir, study(tmp_path, 'trainable = "testing.sleep"\n'))
    assert info["code"]["dirty"] is False and info["code"]["diff"] is None
    assert info["code"]["diff_sha256"] is None and info["code"]["untracked"] == []
    assert not (tmp_path / "out" / "prov" / "code.diff").exists()
    assert info["code_version"].endswith(f"(git {git(repo, 'rev-parse', 'HEAD')[:12]})")


def test_outside_a_git_checkout_the_commit_is_unknown(tmp_path):
    state = code_state(tmp_path)
    assert state.commit is None and state.dirty is None and state.diff is None
    assert state.version_line() == f"gcnc {state.version}"
    assert state.record()["commit"] is None


def test_packages_name_python_and_gcnc(tmp_path):
    packages = study_info(study(tmp_path, 'trainable = "testing.sleep"\n'))["packages"]
    assert {"python", "gcnc", "torch", "numpy"} <= set(packages)


# ---- once per study, and old study directories -------------------------------------------


def test_a_resume_reads_the_stored_provenance_and_gathers_none(tmp_path, monkeypatch):
    spec = study(tmp_path, "[data]\nsplit_seed = 1\n")
    sdir = StudyDir.of(str(tmp_path / "out"), "prov")
    info, _ = open_study_dir(sdir, spec)

    def fail(*args, **kwargs):
        raise AssertionError("provenance gathered again on a resume")

    monkeypatch.setattr(provenance, "dataset_records", fail)
    monkeypatch.setattr(provenance, "code_state", fail)
    again, existed = open_study_dir(sdir, spec)
    assert existed and again == info


def test_a_study_json_without_the_new_keys_still_opens_and_loads(tmp_path):
    spec = study(tmp_path, 'trainable = "testing.sleep"\n')
    sdir = StudyDir.of(str(tmp_path / "out"), "prov")
    info, _ = open_study_dir(sdir, spec)
    old = {k: v for k, v in info.items() if k not in ("code", "datasets")}
    (tmp_path / "out" / "prov" / "study.json").write_text(json.dumps(old))
    again, existed = open_study_dir(sdir, spec)
    assert existed and again == old
    assert analysis.load_results(str(tmp_path / "out" / "prov")).meta == old
