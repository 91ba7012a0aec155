"""The Lambda asset: code root ``lambdas/``, handler ``dataset_prep.handler.handler``, stdlib + boto3 only."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lambdas" / "dataset_prep"
ALLOWED_THIRD_PARTY = {"boto3", "botocore"}


def test_imports_are_relative_or_stdlib_or_boto3() -> None:
    stdlib = set(sys.stdlib_module_names)
    for source in PACKAGE.glob("*.py"):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {str(node.module).split(".")[0]}
            else:
                continue
            assert roots <= stdlib | ALLOWED_THIRD_PARTY | {"__future__"}, (source.name, roots)


@pytest.mark.parametrize("keep_init", [True, False], ids=["package", "namespace-package"])
def test_handler_imports_from_the_asset_root(tmp_path: Path, keep_init: bool) -> None:
    # The stack may exclude __init__.py files from the asset; the handler must import either way.
    target = tmp_path / "asset" / "dataset_prep"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if not keep_init:
        (target / "__init__.py").unlink()
    code = "import sys; sys.path.insert(0, '.'); import dataset_prep.handler as h; print(h.handler.__module__)"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path / "asset", capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "dataset_prep.handler"
