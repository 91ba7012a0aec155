"""The SageMaker metric definitions, checked against the real script's output."""

import re
import subprocess
import sys

import pytest
from metrics import METRIC_DEFINITIONS, format_metrics, format_value

from tests.training.conftest import ROOT, Run


def test_metrics_module_is_light_enough_for_the_cdk_app() -> None:
    code = "import sys, training.metrics; assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_definitions_have_the_shape_sagemaker_accepts() -> None:
    names = [definition["Name"] for definition in METRIC_DEFINITIONS]
    assert len(set(names)) == len(names)
    assert {"train:loss", "train:learning_rate", "train:tokens_per_second", "eval:loss", "eval:perplexity"} <= set(
        names
    )
    for definition in METRIC_DEFINITIONS:
        assert set(definition) == {"Name", "Regex"}
        assert 1 <= len(definition["Name"]) <= 255 and len(definition["Regex"]) <= 500
        assert re.compile(definition["Regex"]).groups == 1


@pytest.mark.parametrize(
    ("value", "text"),
    [(2e-05, "0.00002"), (3.0, "3.0"), (2.3456789, "2.3456789"), (12345.5, "12345.5"), (7, "7"), (0.0, "0.0")],
)
def test_values_are_plain_decimals(value: float, text: str) -> None:
    assert format_value(value) == text


def test_format_metrics_writes_the_trainer_dict_shape_and_skips_non_finite_values() -> None:
    line = format_metrics({"loss": 2.5, "eval_perplexity": float("inf"), "grad_norm": float("nan"), "step": 3})
    assert line == "{'loss': 2.5, 'step': 3}"


def test_loss_does_not_match_eval_loss() -> None:
    train_loss = next(d["Regex"] for d in METRIC_DEFINITIONS if d["Name"] == "train:loss")
    assert not re.search(train_loss, "{'eval_loss': 2.1, 'eval_perplexity': 8.2}")


@pytest.mark.slow
def test_every_metric_is_found_in_the_real_output_with_the_logged_value(full_run: Run) -> None:
    history = full_run.metrics["history"]
    keys = {
        "train:loss": "loss",
        "train:learning_rate": "learning_rate",
        "train:grad_norm": "grad_norm",
        "train:tokens_per_second": "tokens_per_second",
        "train:epoch": "epoch",
        "eval:loss": "eval_loss",
        "eval:perplexity": "eval_perplexity",
        "eval:runtime": "eval_runtime",
    }
    assert set(keys) == {definition["Name"] for definition in METRIC_DEFINITIONS}
    for definition in METRIC_DEFINITIONS:
        found = [float(value) for value in re.findall(definition["Regex"], full_run.output)]
        logged = [record[keys[definition["Name"]]] for record in history if keys[definition["Name"]] in record]
        assert len(found) == len(logged) > 0, definition["Name"]
        assert found == pytest.approx(logged, rel=1e-8, abs=1e-10), definition["Name"]
