"""The stand-ins of fakes/stepfunctions.py hold to what they stand in for: the pinned engine on the virtualenv's
Node.js, Step Functions' names for SageMaker errors, and a request botocore rejects reported as the service would."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fakes.stepfunctions import JsonataEngine, StepFunctions, sagemaker_client, sagemaker_error_name
from tests.pipeline.conftest import Account, minimal_training_job


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
