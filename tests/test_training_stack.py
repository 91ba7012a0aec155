"""Fine-grained assertions on the training stack: the state machine's SageMaker requests, its retry and failure
paths, the tuning variant, the roles, the stop-on-delete custom resource and the shipped source archive.

The state machine definition is read back from the template with every intrinsic replaced by a readable
placeholder (`${Ref:Id}`, `${Output:Name}`), so the assertions see the JSON that Step Functions will see.
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from config import Settings
from lambdas.stop_executions.handler import EXECUTION_NAME_CHARS, JOB_NAME_PREFIX, NAME_HASH_ALGORITHM, job_base_name
from stacks.constructs import training_definition as td
from stacks.constructs.training_source import TRAINING_SOURCE, archive_bytes, build_archive, source_files
from tests.synth import CONFIGURATIONS, ROOT, Assembly, synth

STACK = "LegalGptjTraining"
SPOT_EU = CONFIGURATIONS["training_spot_ebs_eu_west_1"]
TUNING = CONFIGURATIONS["training_tuning_spot"]
BUCKET = "${Output:PublishOutputRefStoreBucket4FBDE984EE94519B}"
KEY_ARN = "${Output:PublishOutputFnGetAttStoreKey7A3C02BDArnE013A91F}"
PREP_ARN = "${Output:PublishOutputFnGetAttPrepFunction0FC8FFE7ArnBDF3D2AD}"


# ---------------------------------------------------------------- helpers


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${Ref:" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        return "${GetAtt:" + ".".join(value["Fn::GetAtt"]) + "}"
    if "Fn::GetStackOutput" in value:
        return "${Output:" + value["Fn::GetStackOutput"]["OutputName"] + "}"
    if "Fn::Sub" in value:
        return str(value["Fn::Sub"])
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_flatten(p) for p in parts)
    raise AssertionError(f"unexpected intrinsic {value}")


def resources(app: Assembly, resource_type: str) -> dict[str, dict[str, Any]]:
    return app.resources(STACK, resource_type)


def state_machine(app: Assembly) -> tuple[str, dict[str, Any]]:
    (logical_id, machine), *rest = resources(app, "AWS::StepFunctions::StateMachine").items()
    assert not rest
    return logical_id, machine["Properties"]


def definition(app: Assembly) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_flatten(state_machine(app)[1]["DefinitionString"]))
    return result


def states(app: Assembly) -> dict[str, Any]:
    result: dict[str, Any] = definition(app)["States"]
    return result


def training_request(app: Assembly) -> dict[str, Any]:
    result: dict[str, Any] = states(app)["TrainModel"]["Arguments"]
    return result


def tuning_job_definition(app: Assembly) -> dict[str, Any]:
    result: dict[str, Any] = states(app)["TuneModel"]["Arguments"]["TrainingJobDefinition"]
    return result


def role_statements(app: Assembly, role_prefix: str) -> list[dict[str, Any]]:
    policies = [p for k, p in resources(app, "AWS::IAM::Policy").items() if k.startswith(role_prefix)]
    assert len(policies) == 1, [k for k in resources(app, "AWS::IAM::Policy")]
    statements: list[dict[str, Any]] = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    return statements


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def resources_of(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return [_flatten(r) for r in (resource if isinstance(resource, list) else [resource])]


def statement_for(statements: list[dict[str, Any]], action: str) -> dict[str, Any]:
    matching = [s for s in statements if action in actions_of(s)]
    assert len(matching) == 1, (action, matching)
    return matching[0]


def spec(**settings: Any) -> td.PipelineSpec:
    return td.PipelineSpec(
        settings=Settings(region="us-east-1", **settings),
        partition="aws",
        bucket_name="bucket",
        key_arn="arn:aws:kms:us-east-1:111122223333:key/k",
        job_role_arn="arn:aws:iam::111122223333:role/job",
        prep_function_arn="arn:aws:lambda:us-east-1:111122223333:function:prep",
        topic_arn="arn:aws:sns:us-east-1:111122223333:topic",
        source_s3_uri="s3://assets/source.tar.gz",
        image_uri="image",
    )


def train_arguments() -> set[str]:
    """Field names of train.py's argument dataclasses, read without importing (that would import transformers)."""
    tree = ast.parse((ROOT / "training" / "arguments.py").read_text())
    return {
        node.target.id
        for cls in tree.body
        if isinstance(cls, ast.ClassDef)
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


# ---------------------------------------------------------------- the job


def test_instance_type_count_and_volume_follow_settings(default_app: Assembly) -> None:
    assert training_request(default_app)["ResourceConfig"] == {
        "InstanceType": "ml.p3dn.24xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 500,
    }
    assert training_request(synth(**SPOT_EU))["ResourceConfig"] == {
        "InstanceType": "ml.p3.16xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 800,
        "VolumeKmsKeyId": KEY_ARN,
    }


def test_volume_key_only_on_instance_types_without_local_nvme(default_app: Assembly) -> None:
    """p3dn has NVMe instance storage, where SageMaker rejects a volume key; p3.16xlarge is EBS-only."""
    assert "VolumeKmsKeyId" not in training_request(default_app)["ResourceConfig"]
    assert "VolumeKmsKeyId" not in tuning_job_definition(synth(**TUNING))["ResourceConfig"]
    grants = [s for s in role_statements(synth(**SPOT_EU), "JobRole") if "kms:CreateGrant" in actions_of(s)]
    assert grants and grants[0]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert not [s for s in role_statements(default_app, "JobRole") if "kms:CreateGrant" in actions_of(s)]
    for instance_type in ("ml.p3.2xlarge", "ml.p3.8xlarge", "ml.p3.16xlarge"):
        request = td.training_job_request(spec(training_instance_type=instance_type))
        assert request["ResourceConfig"]["VolumeKmsKeyId"] == "arn:aws:kms:us-east-1:111122223333:key/k"
    for instance_type in ("ml.p3dn.24xlarge", "ml.g5.48xlarge", "ml.p4d.24xlarge", "ml.p5.48xlarge"):
        assert (
            "VolumeKmsKeyId"
            not in td.training_job_request(spec(training_instance_type=instance_type))["ResourceConfig"]
        )


@pytest.mark.parametrize(
    ("overrides", "uri"),
    [
        (
            {},
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker",
        ),
        (
            SPOT_EU,
            "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker",
        ),
    ],
)
def test_training_image_is_resolved_for_the_region(overrides: dict[str, object], uri: str) -> None:
    app = synth(**overrides)
    algorithm = training_request(app)["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == uri
    assert algorithm["TrainingInputMode"] == "File"
    assert algorithm["EnableSageMakerMetricsTimeSeries"] is True
    region = uri.split(".")[3]
    pulls = statement_for(role_statements(app, "JobRole"), "ecr:BatchGetImage")
    assert resources_of(pulls) == [f"arn:aws:ecr:{region}:763104351884:repository/pytorch-training"]
    assert app.templates[STACK]["Outputs"]["TrainingImage"]["Value"] == uri


def test_image_uri_in_china_uses_the_china_partition_and_domain() -> None:
    from stacks.images import training_image

    image = training_image("cn-north-1")
    assert image.uri.startswith("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/pytorch-training:2.8.0-gpu")
    assert image.repository_arn == "arn:aws-cn:ecr:cn-north-1:727897471807:repository/pytorch-training"


def test_hyperparameters_follow_settings_and_name_train_arguments(default_app: Assembly) -> None:
    hyperparameters = training_request(default_app)["HyperParameters"]
    assert hyperparameters == {
        "method": "{% $method %}",
        "epochs": "{% $string($epochs) %}",
        "learning_rate": "2e-05",
        "block_size": "1024",
        "per_device_train_batch_size": "4",
        "gradient_accumulation_steps": "1",
        "checkpoint_dir": "/opt/ml/checkpoints",
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": hyperparameters["sagemaker_submit_directory"],
        "sagemaker_region": "us-east-1",
        "sagemaker_torch_distributed_enabled": "true",
    }
    assert re.fullmatch(
        r"s3://cdk-hnb659fds-assets-\$\{AWS::AccountId\}-us-east-1/[0-9a-f]{64}\.gz",
        hyperparameters["sagemaker_submit_directory"],
    )
    script_arguments = {k for k in hyperparameters if not k.startswith("sagemaker_")}
    assert script_arguments <= train_arguments(), script_arguments - train_arguments()
    other = training_request(synth(**SPOT_EU))["HyperParameters"]
    assert (other["learning_rate"], other["block_size"], other["sagemaker_region"]) == ("0.0001", "512", "eu-west-1")
    assert (other["per_device_train_batch_size"], other["gradient_accumulation_steps"]) == ("2", "8")


def test_metric_definitions_are_training_metrics_py(default_app: Assembly) -> None:
    loaded = importlib.util.spec_from_file_location("metrics_under_test", ROOT / "training" / "metrics.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    assert training_request(default_app)["AlgorithmSpecification"]["MetricDefinitions"] == module.METRIC_DEFINITIONS
    names = {m["Name"] for m in module.METRIC_DEFINITIONS}
    assert {"train:loss", "eval:loss"} <= names


def test_channels_come_from_the_prep_output(default_app: Assembly) -> None:
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in training_request(default_app)["InputDataConfig"]
    }
    assert channels == {
        name: {
            "S3DataType": "S3Prefix",
            "S3Uri": f"{{% $dataset.{name}_s3_uri %}}",
            "S3DataDistributionType": "FullyReplicated",
        }
        for name in ("train", "validation")
    }
    prep = states(default_app)["PrepareDataset"]
    assert prep["Resource"] == "arn:aws:states:::lambda:invoke"
    assert prep["Arguments"] == {"FunctionName": PREP_ARN, "Payload": {"doc_count": "{% $docCount %}"}}
    assert prep["Assign"] == {"dataset": "{% $states.result.Payload %}"}


def test_model_lands_uncompressed_under_models_with_the_bucket_key(default_app: Assembly) -> None:
    assert training_request(default_app)["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/models/",
        "KmsKeyId": KEY_ARN,
        "CompressionType": "NONE",
    }


def test_spot_and_checkpoints_off_by_default(default_app: Assembly) -> None:
    request = training_request(default_app)
    assert request["EnableManagedSpotTraining"] is False
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 36000}
    assert "CheckpointConfig" not in request


def test_spot_adds_max_wait_and_a_checkpoint_prefix_per_job() -> None:
    request = training_request(synth(**SPOT_EU))
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 20000, "MaxWaitTimeInSeconds": 40000}
    assert request["CheckpointConfig"] == {
        "S3Uri": f"{{% 's3://{BUCKET}/checkpoints/' & $jobName & '/' %}}",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert request["HyperParameters"]["checkpoint_dir"] == request["CheckpointConfig"]["LocalPath"]


def test_max_wait_below_max_run_is_rejected_at_synth() -> None:
    with pytest.raises(ValueError, match="max_wait_seconds"):
        Settings(region="us-east-1", use_spot=True, max_run_seconds=7200, max_wait_seconds=3600)


def test_job_is_named_from_the_execution_and_tagged(default_app: Assembly) -> None:
    request = training_request(default_app)
    assert request["TrainingJobName"] == "{% $jobName %}"
    assert request["RoleArn"] == "${GetAtt:JobRoleA8EE24A2.Arn}"
    assert request["Tags"] == [{"Key": "project", "Value": "legal-gptj"}]
    # The job downloads requirements from PyPI and the base model from the Hub (docs/decisions.md).
    assert request["EnableNetworkIsolation"] is False
    read_input = states(default_app)["ReadInput"]["Assign"]
    assert read_input["jobBase"] == read_input["jobName"] == "{% " + td.JOB_BASE_EXPRESSION + " %}"
    # Built from the twin's constants; tests/pipeline/test_expressions.py evaluates it against the twin.
    assert f"0, {EXECUTION_NAME_CHARS})" in td.JOB_BASE_EXPRESSION and f"'{JOB_NAME_PREFIX}'" in td.JOB_BASE_EXPRESSION
    assert f"$hash($name, '{NAME_HASH_ALGORITHM}')" in td.JOB_BASE_EXPRESSION


@pytest.mark.parametrize(
    ("execution", "job"),
    [
        ("260126-101500-a1b2", "legal-gptj-260126-101500-a1b2"),
        ("3f2a1b4c-1d2e-4f5a-8b9c-0123456789ab", "legal-gptj-3f2a1b4c-1d-fc5733"),
        ("my run_1", "legal-gptj-myrun1-3ba770"),
        ("a_b-c-", "legal-gptj-ab-c-4383a5"),
    ],
)
def test_job_names_fit_sagemaker_limits_with_a_retry_suffix(execution: str, job: str) -> None:
    """The Python twin of the state machine's rule (tests/pipeline evaluates the rule itself against it)."""
    assert job_base_name(execution) == job
    retried = f"{job}-r{td.MAX_ATTEMPTS}"
    assert len(retried) <= 32  # tuning job names
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", retried)


# ---------------------------------------------------------------- input, retries, failures, output


def test_execution_input_may_override_doc_count_epochs_and_method_only(default_app: Assembly) -> None:
    assign = states(default_app)["ReadInput"]["Assign"]
    assert assign["docCount"] == "{% $exists($states.input.doc_count) ? $states.input.doc_count : 693 %}"
    assert assign["epochs"] == "{% $exists($states.input.epochs) ? $states.input.epochs : 3 %}"
    assert assign["method"] == "{% $exists($states.input.method) ? $states.input.method : 'full' %}"
    other = states(synth(**SPOT_EU))["ReadInput"]["Assign"]
    assert ("250" in other["docCount"], "2 %}" in other["epochs"], "'lora'" in other["method"]) == (True, True, True)
    validate = states(default_app)["ValidateInput"]
    condition = validate["Choices"][0]["Condition"]
    assert "['doc_count', 'epochs', 'method', 'Comment']" in condition
    assert "$docCount >= 1 and $docCount <= 693" in condition and "$epochs >= 1 and $epochs <= 100" in condition
    assert "$method in ['full', 'lora']" in condition
    assert validate["Default"] == "InvalidInput" and states(default_app)["InvalidInput"]["Type"] == "Fail"


def test_capacity_failures_retry_with_growing_waits_then_notify(default_app: Assembly) -> None:
    s = states(default_app)
    train = s["TrainModel"]
    assert train["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    # The name Step Functions gives SageMaker's throttling and 5xx errors (tests/pipeline shows the retry happen).
    assert train["Retry"] == [
        {
            "ErrorEquals": ["SageMaker.AmazonSageMakerException"],
            "IntervalSeconds": 30,
            "MaxAttempts": 3,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    ]
    # The job's FailureReason is read once, where the error is caught (tests/pipeline: even from a cut cause).
    assert train["Catch"] == [
        {
            "ErrorEquals": ["States.ALL"],
            "Assign": {
                "failure": "{% $states.errorOutput %}",
                "failedState": "TrainModel",
                "failureReason": "{% " + td.JOB_FAILURE_REASON + " %}",
                "createRetries": "{% $states.context.State.RetryCount %}",
            },
            "Next": "ShouldRetry",
        }
    ]
    assert s["PrepareDataset"]["Catch"][0]["Assign"]["failureReason"] == "{% '' %}"
    existing, rule = s["ShouldRetry"]["Choices"]
    # A duplicate name after a retry in place: the earlier try made the job (tests/pipeline: made anyway).
    assert existing == {
        "Condition": "{% $failure.Error = 'SageMaker.ResourceInUseException' and $createRetries > 0 %}",
        "Assign": {"polls": 0},
        "Next": "DescribeExistingJob",
    }
    assert rule["Next"] == "WaitBeforeRetry" and s["ShouldRetry"]["Default"] == "NotifyFailure"
    assert rule["Condition"].startswith("{% $attempt < 4 and (")
    assert "'SageMaker.ResourceLimitExceededException'" in rule["Condition"]
    # Decided on the failed job's FailureReason, not on the whole description (tests/pipeline: the algorithm error).
    assert "$contains($failureReason, /^(CapacityError|InsufficientCapacity)/)" in rule["Condition"]
    assert "$failure.Cause" not in rule["Condition"] and "$parse" not in json.dumps(s["ShouldRetry"])
    assert "$parse" not in json.dumps([s["NotifyFailure"], s["TrainingFailed"]])
    wait = s["WaitBeforeRetry"]
    assert wait["Seconds"] == "{% $round($min([600 * $power(2, $attempt - 1), 3600])) %}"
    assert wait["Assign"] == {"attempt": "{% $attempt + 1 %}", "jobName": "{% $jobBase & '-r' & ($attempt + 1) %}"}
    assert wait["Next"] == "TrainModel"


@pytest.mark.parametrize(
    ("overrides", "describe", "name_field", "completed_next"),
    [
        ({}, "describeTrainingJob", "TrainingJobName", "ModelReady"),
        (TUNING, "describeHyperParameterTuningJob", "HyperParameterTuningJobName", "FindBestTrainingJob"),
    ],
    ids=["training", "tuning"],
)
def test_a_job_made_by_an_earlier_try_is_described_until_it_ends(
    default_app: Assembly, overrides: dict[str, object], describe: str, name_field: str, completed_next: str
) -> None:
    s = states(synth(**overrides) if overrides else default_app)
    task = s["DescribeExistingJob"]
    assert task["Resource"] == f"arn:aws:states:::aws-sdk:sagemaker:{describe}"
    assert task["Arguments"] == {name_field: "{% $jobName %}"}
    # The AWS SDK integration's retry, as FindBestTrainingJob has it (with tuning).
    describe_retry = [
        {
            "ErrorEquals": ["SageMaker.SageMakerException", "States.Timeout"],
            "IntervalSeconds": 10,
            "MaxAttempts": 3,
            "BackoffRate": 2,
        }
    ]
    assert task["Retry"] == describe_retry
    if overrides:
        assert s["FindBestTrainingJob"]["Retry"] == describe_retry
    assert task["Catch"][0]["Next"] == "NotifyFailure" and task["Next"] == "ExistingJobStatus"
    choice = s["ExistingJobStatus"]
    completed, failed, outlasted = choice["Choices"]
    assert completed["Next"] == completed_next and failed["Next"] == "ShouldRetry"
    assert (
        "'States.TaskFailed'" in failed["Assign"]["failure"] and "'JobStillRunning'" in outlasted["Assign"]["failure"]
    )
    assert outlasted["Next"] == "NotifyFailure" and choice["Default"] == "WaitForExistingJob"
    # Only what the Choice state's documentation names: no Output in a rule, no Assign beside the rules.
    assert {key for rule in choice["Choices"] for key in rule} <= {"Condition", "Next", "Assign"}
    assert set(choice) == {"Type", "Choices", "Default"}
    assert s["WaitForExistingJob"] == {"Type": "Wait", "Seconds": 300, "Next": "DescribeExistingJob"}
    if not overrides:  # the output the `.sync` task would have given
        assert task["Output"] == s["TrainModel"]["Output"]


def test_existing_job_polls_cover_the_longest_a_job_may_run() -> None:
    hour = 3600
    assert td.existing_job_polls(Settings(region="us-east-1")) == (10 * hour + hour) // 300  # max_run_seconds
    assert td.existing_job_polls(Settings(region="us-east-1", use_spot=True)) == (20 * hour + hour) // 300
    # Four training jobs, two at a time, each up to max_wait_seconds.
    tuning = Settings(region="us-east-1", use_spot=True, tuning_enabled=True, tuning_max_jobs=4, tuning_parallel_jobs=2)
    assert td.existing_job_polls(tuning) == (2 * 20 * hour + hour) // 300


def test_every_failure_is_published_then_fails_the_execution(default_app: Assembly) -> None:
    s = states(default_app)
    assert s["PrepareDataset"]["Catch"][0]["Next"] == "NotifyFailure"
    assert s["PrepareDataset"]["Retry"][0]["ErrorEquals"][0].startswith("Lambda.")
    notify = s["NotifyFailure"]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Arguments"]["TopicArn"] == "${Ref:NotificationsTopicAE679CBD}"
    assert "$failure.Error" in notify["Arguments"]["Message"] and "$failure.Cause" in notify["Arguments"]["Message"]
    # SNS takes subjects of fewer than 100 characters.
    assert notify["Arguments"]["Subject"] == "{% $substring('Legal GPT-J training failed: ' & $jobName, 0, 99) %}"
    assert notify["Next"] == "TrainingFailed" and notify["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "Next": "TrainingFailed"}
    ]
    # A name of our own: `States.` names are reserved, and re-raising `States.TaskFailed` is a runtime error.
    failed = s["TrainingFailed"]
    assert (failed["Type"], failed["Error"]) == ("Fail", "PipelineFailed")
    assert "$failure.Error" in failed["Cause"] and "$failure.Cause" in failed["Cause"]
    assert s["PrepareDataset"]["Catch"][0]["Assign"]["failedState"] == "PrepareDataset"
    topics = resources(default_app, "AWS::SNS::Topic")
    assert len(topics) == 1 and "NotificationsTopicAE679CBD" in topics
    assert resources(default_app, "AWS::SNS::Subscription") == {}
    (subscription,) = resources(synth(**SPOT_EU), "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ml@example.com"


def test_output_names_the_model_location_on_both_paths(default_app: Assembly) -> None:
    output = states(default_app)["TrainModel"]["Output"]
    assert output == {
        "training_job_name": "{% $jobName %}",
        "tuning_job_name": "{% null %}",
        "model_s3_uri": f"{{% 's3://{BUCKET}/models/' & $jobName & '/output/model/' %}}",
        "dataset_id": "{% $dataset.dataset_id %}",
        "manifest_uri": "{% $dataset.manifest_uri %}",
        "attempts": "{% $attempt %}",
    }
    assert states(default_app)["TrainModel"]["Next"] == "ModelReady"
    assert states(default_app)["ModelReady"] == {"Type": "Succeed"}
    tuned = states(synth(**TUNING))["FindBestTrainingJob"]["Output"]
    assert set(tuned) == set(output)
    best = "$states.result.BestTrainingJob.TrainingJobName"
    assert tuned["model_s3_uri"] == f"{{% 's3://{BUCKET}/models/' & {best} & '/output/model/' %}}"
    assert tuned["tuning_job_name"] == "{% $jobName %}"
    outputs = default_app.templates[STACK]["Outputs"]
    assert outputs["StateMachineArn"]["Value"] == {"Ref": state_machine(default_app)[0]}
    assert _flatten(outputs["ModelArtifacts"]["Value"]) == f"s3://{BUCKET}/models/<training-job-name>/output/model/"
    assert (outputs["JobKind"]["Value"], outputs["JobNamePrefix"]["Value"]) == ("training", JOB_NAME_PREFIX)


# ---------------------------------------------------------------- tuning


def test_tuning_runs_a_tuning_job_over_the_learning_rate() -> None:
    app = synth(**TUNING)
    s = states(app)
    assert "TrainModel" not in s and s["PrepareDataset"]["Next"] == "TuneModel"
    tune = s["TuneModel"]
    assert tune["Resource"] == "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync"
    assert tune["Catch"][0]["Next"] == "ShouldRetry" and s["WaitBeforeRetry"]["Next"] == "TuneModel"
    config = tune["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "eval:loss"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}
    assert config["ParameterRanges"]["ContinuousParameterRanges"] == [
        {"Name": "learning_rate", "MinValue": "2e-05", "MaxValue": "0.0003", "ScalingType": "Logarithmic"}
    ]
    job = tuning_job_definition(app)
    metric_names = {m["Name"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert config["HyperParameterTuningJobObjective"]["MetricName"] in metric_names
    assert "learning_rate" not in job["StaticHyperParameters"]
    assert job["StaticHyperParameters"]["sagemaker_program"] == "train.py"
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 36000, "MaxWaitTimeInSeconds": 72000}
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert job["OutputDataConfig"]["CompressionType"] == "NONE"
    assert tune["Arguments"]["HyperParameterTuningJobName"] == "{% $jobName %}"
    best = s["FindBestTrainingJob"]
    assert best["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:describeHyperParameterTuningJob"
    assert best["Arguments"] == {"HyperParameterTuningJobName": "{% $jobName %}"}
    assert app.templates[STACK]["Outputs"]["JobKind"]["Value"] == "tuning"


def test_tuning_request_shares_the_job_fields_with_a_single_job() -> None:
    single = td.training_job_request(spec(use_spot=True))
    tuned = td.tuning_job_request(spec(use_spot=True, tuning_enabled=True))["TrainingJobDefinition"]
    for field in (
        "RoleArn",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
        "EnableManagedSpotTraining",
        "CheckpointConfig",
        "EnableNetworkIsolation",
    ):
        assert tuned[field] == single[field], field
    assert tuned["StaticHyperParameters"] == {
        k: v for k, v in single["HyperParameters"].items() if k != "learning_rate"
    }
    assert "CheckpointConfig" not in td.tuning_job_request(spec(tuning_enabled=True))["TrainingJobDefinition"]


# ---------------------------------------------------------------- the definition as a whole


@pytest.mark.parametrize("overrides", [{}, SPOT_EU, TUNING], ids=["default", "spot", "tuning"])
def test_definition_parses_as_amazon_states_language(overrides: dict[str, object]) -> None:
    document = definition(synth(**overrides))
    assert document["QueryLanguage"] == "JSONata" and document["StartAt"] == "ReadInput"
    AmazonStateLanguageParser.parse(json.dumps(document))
    names = set(document["States"])
    for name, state in document["States"].items():
        targets = [state.get("Next"), state.get("Default")]
        targets += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
        assert {t for t in targets if t} <= names, name
        if state["Type"] not in ("Succeed", "Fail", "Choice"):
            assert "Next" in state or state.get("End"), name


def test_every_variable_read_is_assigned(default_app: Assembly) -> None:
    for document in (definition(synth(**TUNING)), definition(default_app)):
        text = json.dumps(document)
        assigned = {
            name
            for state in document["States"].values()
            for assign in [
                state.get("Assign", {}),
                *(c.get("Assign", {}) for c in state.get("Catch", []) + state.get("Choices", [])),
            ]
            for name in assign
        }
        local = set(re.findall(r"\$(\w+) :=", text)) | set(re.findall(r"function\(\$(\w+)\)", text))
        read = set(re.findall(r"\$([a-zA-Z]\w*)\b(?!\()", text)) - {"states"}
        assert read <= assigned | local, read - assigned - local


# ---------------------------------------------------------------- roles


def test_job_role_is_scoped_to_its_prefixes_and_image(default_app: Assembly) -> None:
    statements = role_statements(default_app, "JobRole")
    by_resource: dict[str, set[str]] = {}
    for statement in statements:
        for resource in resources_of(statement):
            by_resource.setdefault(resource, set()).update(actions_of(statement))
    bucket_arn = "${Output:PublishOutputFnGetAttStoreBucket4FBDE984Arn1428C095}"
    assert by_resource[f"{bucket_arn}/datasets/*"] == {"s3:GetObject"}
    assert by_resource[f"{bucket_arn}/models/*"] == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
    assert "s3:DeleteObject" in by_resource[f"{bucket_arn}/checkpoints/*"]
    object_resources = {r for r in by_resource if r.startswith(bucket_arn + "/")}
    assert object_resources == {f"{bucket_arn}/{p}*" for p in ("datasets/", "models/", "checkpoints/")}
    listings = [s for s in statements if actions_of(s) == ["s3:ListBucket"]]
    assert sorted(s["Condition"]["StringLike"]["s3:prefix"][0] for s in listings) == [
        "checkpoints/*",
        "datasets/*",
        "models/*",
    ]
    source = [r for r in by_resource if r.startswith("arn:aws:s3:::cdk-hnb659fds-assets-")]
    assert len(source) == 1 and by_resource[source[0]] == {"s3:GetObject"} and source[0].endswith(".gz")
    assert by_resource["*"] == {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}
    metrics = statement_for(statements, "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}
    assert by_resource[KEY_ARN] == {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"}
    (job_role,) = [r for k, r in resources(default_app, "AWS::IAM::Role").items() if k.startswith("JobRole")]
    principal = job_role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "sagemaker.amazonaws.com"}


def test_no_role_has_managed_policies_or_unexplained_wildcards(default_app: Assembly) -> None:
    for app in (default_app, synth(**TUNING)):
        for role in resources(app, "AWS::IAM::Role").values():
            assert "ManagedPolicyArns" not in role["Properties"]
        wildcard_actions = {
            action
            for policy in resources(app, "AWS::IAM::Policy").values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if "*" in resources_of(statement)
            for action in actions_of(statement)
        }
        # Each of these accepts no resource (IAM service authorization reference); acknowledged one by one.
        assert wildcard_actions <= {
            "ecr:GetAuthorizationToken",
            "cloudwatch:PutMetricData",
            "sagemaker:ListTrainingJobs",
            "sagemaker:ListHyperParameterTuningJobs",
            *(
                f"logs:{a}"
                for a in (
                    "CreateLogDelivery",
                    "DeleteLogDelivery",
                    "DescribeLogGroups",
                    "DescribeResourcePolicies",
                    "GetLogDelivery",
                    "ListLogDeliveries",
                    "PutResourcePolicy",
                    "UpdateLogDelivery",
                )
            ),
            *(
                f"xray:{a}"
                for a in ("GetSamplingRules", "GetSamplingTargets", "PutTelemetryRecords", "PutTraceSegments")
            ),
        }
        actions = {
            a
            for p in resources(app, "AWS::IAM::Policy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            for a in actions_of(s)
        }
        assert not [a for a in actions if a.endswith("*")], actions


def test_state_machine_role_does_only_what_the_definition_does(default_app: Assembly) -> None:
    statements = role_statements(default_app, "PipelineRole")
    jobs = statement_for(statements, "sagemaker:CreateTrainingJob")
    assert set(actions_of(jobs)) == {
        f"sagemaker:{a}" for a in ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob", "AddTags", "ListTags")
    }
    assert resources_of(jobs) == ["arn:aws:sagemaker:us-east-1:${Ref:AWS::AccountId}:training-job/legal-gptj-*"]
    rule = statement_for(statements, "events:PutRule")
    assert set(actions_of(rule)) == {"events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert resources_of(rule) == [
        "arn:aws:events:us-east-1:${Ref:AWS::AccountId}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"
    ]
    pass_role = statement_for(statements, "iam:PassRole")
    assert resources_of(pass_role) == ["${GetAtt:JobRoleA8EE24A2.Arn}"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert resources_of(statement_for(statements, "lambda:InvokeFunction")) == [PREP_ARN]
    assert resources_of(statement_for(statements, "sns:Publish")) == ["${Ref:NotificationsTopicAE679CBD}"]
    tuning = role_statements(synth(**TUNING), "PipelineRole")
    tune = statement_for(tuning, "sagemaker:CreateHyperParameterTuningJob")
    assert set(actions_of(tune)) == {
        f"sagemaker:{a}"
        for a in (
            "CreateHyperParameterTuningJob",
            "DescribeHyperParameterTuningJob",
            "StopHyperParameterTuningJob",
            "ListTrainingJobsForHyperParameterTuningJob",
            "AddTags",
            "ListTags",
        )
    }
    assert resources_of(tune)[0].endswith(":hyper-parameter-tuning-job/legal-gptj-*")
    assert resources_of(statement_for(tuning, "events:PutRule"))[0].endswith(
        "rule/StepFunctionsGetEventsForSageMakerTuningJobsRule"
    )
    assert not [s for s in tuning if "sagemaker:CreateTrainingJob" in actions_of(s)]


@pytest.mark.parametrize("overrides", [{}, TUNING], ids=["training", "tuning"])
def test_state_machine_role_may_call_every_aws_sdk_task_of_the_definition_on_the_projects_jobs_only(
    default_app: Assembly, overrides: dict[str, object]
) -> None:
    app = synth(**overrides) if overrides else default_app
    statements = role_statements(app, "PipelineRole")
    calls = {
        state["Resource"].removeprefix("arn:aws:states:::aws-sdk:")
        for state in states(app).values()
        if state.get("Resource", "").startswith("arn:aws:states:::aws-sdk:")
    }
    assert calls  # DescribeExistingJob, and FindBestTrainingJob with tuning
    kind = "hyper-parameter-tuning-job" if overrides else "training-job"
    for call in calls:
        service, action = call.split(":")
        statement = statement_for(statements, f"{service}:{action[0].upper()}{action[1:]}")
        assert resources_of(statement) == [f"arn:aws:sagemaker:us-east-1:${{Ref:AWS::AccountId}}:{kind}/legal-gptj-*"]


def test_state_machine_logs_everything_to_a_retained_group_and_traces(default_app: Assembly) -> None:
    _, machine = state_machine(default_app)
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert machine["TracingConfiguration"] == {"Enabled": True}
    groups = resources(default_app, "AWS::Logs::LogGroup")
    assert len(groups) == 3  # the state machine's, the stop handler's, the custom resource framework's
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 30
        assert group["DeletionPolicy"] == "Delete"
    names = [g["Properties"].get("LogGroupName") for g in groups.values()]
    assert "/aws/vendedlogs/states/LegalGptjTraining" in names


# ---------------------------------------------------------------- stop on delete


def test_deleting_the_stack_stops_running_executions_first(default_app: Assembly) -> None:
    machine_id, _ = state_machine(default_app)
    (custom,) = resources(default_app, "Custom::StopRunningTraining").values()
    # A reference to the state machine: CloudFormation deletes this resource (and runs its Delete) before it.
    assert custom["Properties"]["StateMachineArn"] == {"Ref": machine_id}
    functions = resources(default_app, "AWS::Lambda::Function")
    (handler,) = [f["Properties"] for f in functions.values() if f["Properties"].get("Handler") == "handler.on_event"]
    assert (handler["Runtime"], handler["Timeout"]) == ("python3.14", 720)
    assert "LoggingConfig" in handler
    statements = role_statements(default_app, "StopOnDeleteRoleDefault")
    assert resources_of(statement_for(statements, "states:ListExecutions")) == ["${Ref:" + machine_id + "}"]
    assert resources_of(statement_for(statements, "states:StopExecution")) == [
        "arn:aws:states:us-east-1:${Ref:AWS::AccountId}:execution:${GetAtt:" + machine_id + ".Name}:*"
    ]
    stop_jobs = statement_for(statements, "sagemaker:StopTrainingJob")
    assert resources_of(stop_jobs)[0].endswith(":training-job/legal-gptj-*")
    assert resources_of(statement_for(statements, "sagemaker:StopHyperParameterTuningJob"))[0].endswith(
        ":hyper-parameter-tuning-job/legal-gptj-*"
    )


# ---------------------------------------------------------------- the source archive


def test_source_archive_is_deterministic_and_holds_the_script_only(default_app: Assembly) -> None:
    first, second = archive_bytes(TRAINING_SOURCE), archive_bytes(TRAINING_SOURCE)
    assert first == second
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first))) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == [p.as_posix() for p in source_files(TRAINING_SOURCE)]
    assert {"train.py", "arguments.py", "metrics.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n == "requirements-test.txt"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
    # The asset the job downloads is such an archive (of the files as they were at synth), staged under its hash.
    submit = training_request(default_app)["HyperParameters"]["sagemaker_submit_directory"]
    asset_hash = submit.rsplit("/", 1)[1].removesuffix(".gz")
    staged = (default_app.outdir / f"asset.{asset_hash}.tar.gz").read_bytes()
    assert staged[:2] == b"\x1f\x8b" and staged[4:8] == b"\0\0\0\0"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(staged))) as tar:
        assert "train.py" in tar.getnames()
        assert {(m.mtime, m.uid, m.mode) for m in tar.getmembers()} == {(0, 0, 0o644)}


def test_source_archive_skips_caches_and_tests(tmp_path: Path) -> None:
    source = tmp_path / "training"
    (source / "__pycache__").mkdir(parents=True)
    (source / "__pycache__" / "train.cpython-312.pyc").write_bytes(b"x")
    (source / "tests").mkdir()
    (source / "tests" / "test_train.py").write_text("")
    (source / "pkg").mkdir()
    (source / "pkg" / "util.py").write_text("")
    (source / "train.py").write_text("print('hi')\n")
    (source / "requirements.txt").write_text("transformers==5.24.0\n")
    (source / "requirements-test.txt").write_text("torch\n")
    (source / ".hidden").write_text("")
    assert [p.as_posix() for p in source_files(source)] == ["requirements.txt", "train.py", "pkg/util.py"]
    archive = build_archive(source, tmp_path / "build")
    assert archive.read_bytes() == archive_bytes(source)
    written = archive.stat()
    assert build_archive(source, tmp_path / "build") == archive
    assert (archive.stat().st_ino, archive.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # left as it is
