"""The torch the training tests run on is the one pinned for their environment, and the container environment's
pin follows the training image: the tests of `make test-container` run the torch the job runs."""

import ast
import os
import re
import shutil
import subprocess

import pytest
import torch

from tests.training.conftest import HERE, ROOT, pins


def training_image_torch() -> str:
    """The torch release in stacks/images.py's TRAINING_TAG (read as source: that module needs the CDK)."""
    tree = ast.parse((ROOT / "stacks" / "images.py").read_text())
    tags = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["TRAINING_TAG"]
        and isinstance(node.value, ast.Constant)
    ]
    assert len(tags) == 1, "stacks/images.py: expected one TRAINING_TAG = '<torch version>-gpu-...'"
    return str(tags[0]).split("-")[0]


def test_the_container_environment_pins_the_training_images_torch() -> None:
    image = training_image_torch()
    assert re.fullmatch(r"\d+\.\d+\.\d+", image)
    assert pins(HERE / "container-requirements.txt")["torch"] == image
    assert pins(HERE / "container-constraints.txt")["torch"] == image
    # and the same training requirements as the job installs, through the same file
    assert "-r ../../training/requirements.txt" in (HERE / "container-requirements.txt").read_text().splitlines()
    shipped = pins(ROOT / "training" / "requirements.txt")
    assert {name: pins(HERE / "container-constraints.txt")[name] for name in shipped} == shipped


def test_these_tests_run_on_their_environments_torch() -> None:
    """make test-container sets TEST_ENVIRONMENT=container; otherwise this is the dev virtualenv."""
    container = os.environ.get("TEST_ENVIRONMENT") == "container"
    pinned = pins(HERE / "container-constraints.txt" if container else ROOT / "constraints.txt")["torch"]
    assert torch.__version__.split("+")[0] == pinned.split("+")[0]


@pytest.mark.parametrize(
    ("stamp", "requirements", "venv"),
    [
        (".stamps/container", "tests/training/container-constraints.txt", ".venv-container"),
        (".stamps/container", "training/requirements.txt", ".venv-container"),
        (".stamps/serving", "tests/serving/requirements.txt", ".venv-serving"),
    ],
)
def test_a_test_environment_is_made_afresh_when_its_requirements_change(
    stamp: str, requirements: str, venv: str
) -> None:
    """What `make test-container` runs after a requirements file changed (make -n: printed, not run): the old
    virtualenv removed, a new one made, then the install; installing over the old one would keep dropped packages."""
    make = shutil.which("make")
    assert make, "make is not on PATH"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON_BOOT")}
    printed = subprocess.run(
        [make, "--no-print-directory", "-n", "-W", requirements, stamp],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    removed = printed.index(f"rm -rf {venv}")
    made = next(i for i, line in enumerate(printed) if re.fullmatch(rf"\S+ -m venv {re.escape(venv)}", line))
    installed = next(i for i, line in enumerate(printed) if line.startswith(f"{venv}/bin/python -m pip install"))
    assert removed < made < installed
