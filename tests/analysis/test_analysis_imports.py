"""``analysis`` reads Parquet only: it never imports torch, ray, trainables or orchestrator."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import analysis

FORBIDDEN = ("torch", "ray", "trainables", "orchestrator")
PACKAGE = pathlib.Path(analysis.__file__).parent


def test_no_module_of_analysis_names_a_forbidden_package():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_every_analysis_module_loads_no_forbidden_package():
    modules = [
        "analysis." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
