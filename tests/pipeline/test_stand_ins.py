"""The stand-ins of fakes/stepfunctions.py hold to what they stand in for: the pinned engine on the virtualenv's
Node.js, Step Functions' names for SageMaker errors, a request botocore rejects reported as the service would, a
duplicate job name refused in its region, and the training container's arguments as the training toolkit's."""

from __future__ import annotations

import copy
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fakes.stepfunctions import JsonataEngine, StepFunctions, TrainingContainer, sagemaker_client, sagemaker_error_name
from tests.pipeline.conftest import BUCKET, Account, minimal_training_job


def test_the_engine_is_the_pinned_jsonata_on_the_virtualenvs_node(engine: JsonataEngine) -> None:
    assert engine.versions["jsonata"] == "2.0.6"
    assert engine.versions["node"].startswith("v24.")
    assert engine.evaluate("[1, 2, 3][$ > 1]") == [2, 3]
    assert engine.evaluate("{'a': 1}.b") is None  # undefined, as moto expects it


@pytest.mark.parametrize(
    ("operation", "code", "name"),
    [
        ("CreateTrainingJob", "ResourceInUse", "SageMaker.ResourceInUseException"),
        ("CreateTrainingJob", "ResourceLimitExceeded", "SageMaker.ResourceLimitExceededException"),
        ("CreateTrainingJob", "ThrottlingException", "SageMaker.AmazonSageMakerException"),
        ("CreateTrainingJob", "ValidationException", "SageMaker.AmazonSageMakerException"),
        ("CreateTrainingJob", "InternalFailure", "SageMaker.AmazonSageMakerException"),
        ("CreateHyperParameterTuningJob", "ResourceLimitExceeded", "SageMaker.ResourceLimitExceededException"),
    ],
)
def test_sagemaker_error_names_follow_botocores_model(operation: str, code: str, name: str) -> None:
    model = sagemaker_client().meta.service_model.operation_model(operation)
    assert sagemaker_error_name(model, code) == name


def _rerun_with(account: Account, sf: StepFunctions, change: Any, name: str) -> Any:
    document = copy.deepcopy(account.pipeline().definition)
    change(document["States"])
    return sf.run(sf.create_state_machine(document, name=name), {})


def test_a_request_botocore_rejects_is_the_services_validation_error(account: Account, sf: StepFunctions) -> None:
    def volume_as_text(states: dict[str, Any]) -> None:
        states["TrainModel"]["Arguments"]["ResourceConfig"]["VolumeSizeInGB"] = "500"

    execution = _rerun_with(account, sf, volume_as_text, "invalid-request")
    assert [call for call, _ in sf.sagemaker.calls] == []  # botocore refused it before sending
    assert execution.task_errors() == ["SageMaker.AmazonSageMakerException"] * 4  # then the task's Retry
    assert "Error Code: ValidationException" in str(execution.cause)
    assert "ResourceConfig.VolumeSizeInGB" in str(execution.cause)
    account.notifications()


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_a_second_job_of_a_name_is_refused_in_the_region_of_the_first(
    account: Account, sf: StepFunctions, region: str
) -> None:
    client = sf.sagemaker.client(region)
    request = minimal_training_job(f"legal-gptj-twice-{region}", account.role_arn)
    client.create_training_job(**request)
    with pytest.raises(client.exceptions.ResourceInUse):
        client.create_training_job(**request)
    assert [operation for operation, _ in sf.sagemaker.calls] == ["CreateTrainingJob"] * 2


def test_the_training_container_passes_hyperparameters_as_the_sagemaker_training_toolkit_does(
    account: Account, sf: StepFunctions, tmp_path: Path
) -> None:
    # sagemaker-training's read_hyperparameters JSON-decodes each value (a string that is not JSON stays as it is),
    # leaves out its own (sagemaker_*, _tuning_objective_metric), and to_cmd_args sorts the names and writes str().
    script = "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'hps': json.loads(os.environ['SM_HPS'])}))"
    source = io.BytesIO()
    with tarfile.open(fileobj=source, mode="w:gz") as tar:
        entry = tarfile.TarInfo("echo.py")
        entry.size = len(script)
        tar.addfile(entry, io.BytesIO(script.encode()))
    sf.client("s3").put_object(Bucket=BUCKET, Key="assets/echo.tar.gz", Body=source.getvalue())
    hyperparameters = {
        "learning_rate": "2E-5",
        "epochs": "3",
        "method": "full",
        "checkpoint_dir": "/opt/ml/checkpoints",
        "compile": "true",
        "layers": '{"b": 2, "a": 1}',
        "x": "1",
        "_tuning_objective_metric": "eval:loss",
        "sagemaker_program": "echo.py",
        "sagemaker_submit_directory": f"s3://{BUCKET}/assets/echo.tar.gz",
    }
    request = {**minimal_training_job("legal-gptj-echo", account.role_arn), "HyperParameters": hyperparameters}
    container = TrainingContainer(tmp_path)
    assert container("legal-gptj-echo", request).status == "Completed"
    (run,) = container.runs
    printed = json.loads(run["log"].splitlines()[-1])
    checkpoints = str(tmp_path / "legal-gptj-echo" / "opt" / "ml" / "checkpoints")
    assert printed["argv"] == run["argv"] == [
        "--checkpoint_dir", checkpoints, "--compile", "True", "--epochs", "3", "--layers", "a=1,b=2",
        "--learning_rate", "2e-05", "--method", "full", "-x", "1",
    ]  # fmt: skip
    assert printed["hps"] == {
        "checkpoint_dir": checkpoints, "compile": True, "epochs": 3, "layers": {"a": 1, "b": 2},
        "learning_rate": 2e-05, "method": "full", "x": 1,
    }  # fmt: skip
