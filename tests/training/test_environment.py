"""The torch the training tests run on is the one pinned for their environment, and the container environment's
pin follows the training image: the tests of `make test-container` run the torch the job runs."""

import ast
import os
import re

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
