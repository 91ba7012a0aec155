"""`make rehearse` end to end: the state machine executed in moto's interpreter, its prep step the real prep, its
training job train.py as the CreateTrainingJob request describes it, then the model the output names, queried."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ops import rehearse
from stacks.constructs import training_definition as td


@pytest.fixture
def quiet_moto() -> Iterator[None]:
    """rehearse.main quiets moto's loggers; give them back to the other tests."""
    loggers = [logging.getLogger(name) for name in ("moto", "werkzeug", "dataset_prep")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.mark.slow
def test_rehearsal_runs_the_pipeline_and_trains_the_job_it_asked_for(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, quiet_moto: None
) -> None:
    progress = rehearse.Progress()
    result = rehearse.rehearse(tmp_path, doc_count=6, method="full", progress=progress)
    assert result.execution.status == "SUCCEEDED"
    assert result.execution.states == ["ReadInput", "ValidateInput", "PrepareDataset", "TrainModel", "ModelReady"]
    request, run = result.request, result.run
    # The job that ran is the one the state machine requested: its name, its arguments, its channels.
    assert run["job"] == request["TrainingJobName"] == result.execution.output["training_job_name"]
    ran = dict(zip(run["argv"][::2], run["argv"][1::2], strict=True))
    assert list(ran) == sorted(ran)  # the training toolkit's order
    requested = {f"--{k}": v for k, v in request["HyperParameters"].items() if not k.startswith("sagemaker_")}
    assert ran.keys() == requested.keys()
    assert {k: v for k, v in ran.items() if k != "--checkpoint_dir"} == {
        k: v for k, v in requested.items() if k != "--checkpoint_dir"
    }
    assert ran["--checkpoint_dir"].endswith(f"/{run['job']}/opt/ml/checkpoints")  # /opt/ml, re-rooted
    assert (ran["--epochs"], ran["--method"], ran["--block_size"]) == ("1", "full", "64")
    channels = {c["ChannelName"] for c in request["InputDataConfig"]}
    assert {name for name in json.loads(run["env"]["SM_CHANNELS"])} == channels == {"train", "validation"}
    dataset = result.execution.output["dataset_id"]
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"].endswith(f"/datasets/{dataset}/train/")
    # The model came back from where the output says, in the layout the serving stack loads.
    assert result.execution.output["model_s3_uri"].endswith(f"/models/{run['job']}/output/model/")
    assert (result.model_dir / "config.json").exists() and (result.model_dir / "model.safetensors").exists()
    assert result.answer.startswith("His Honour Judge Richards:")
    perplexity = result.metrics["eval:perplexity"]
    assert len(perplexity) == 2 and perplexity[-1] < perplexity[0]


@pytest.mark.slow
def test_a_hyperparameter_the_script_does_not_accept_fails_the_rehearsal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], quiet_moto: None
) -> None:
    original = td.static_hyperparameters

    def with_unknown(spec: Any) -> dict[str, str]:
        return {**original(spec), "warmup_steps": "10"}

    monkeypatch.setattr(td, "static_hyperparameters", with_unknown)
    with pytest.raises(SystemExit) as failed:
        rehearse.main(["--doc-count", "2"])
    message = str(failed.value)
    assert message.startswith("error: the pipeline failed: PipelineFailed: TrainModel failed with States.TaskFailed")
    assert "AlgorithmError: ExecuteUserScriptError: ExitCode 2" in message
    assert "warmup_steps" in message
