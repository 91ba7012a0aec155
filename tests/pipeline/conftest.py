"""The training pipeline's state machine, executed: moto's ASL interpreter, the `jsonata` engine in one node child,
the real prep Lambda handler against a loopback archive, and the stand-ins of fakes/stepfunctions.py.

Everything here is started once for the package (the engine, `mock_aws`, the archive server, the AWS resources the
definition names) and each test gets the interpreter with its scripted SageMaker outcomes and recorded waits
cleared, so a scenario costs a fraction of a second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from config import Settings
from fakes.archive import SyntheticArchive, build_synthetic_archive
from fakes.http_server import BlobServer
from fakes.stepfunctions import (
    ACCOUNT,
    REGION,
    Execution,
    JsonataEngine,
    StepFunctions,
    create_prep_function,
    pipeline_spec,
)
from stacks.constructs import training_definition as td

BUCKET = "legal-gptj-data"
SOURCE_URI = f"s3://cdk-hnb659fds-assets-{ACCOUNT}-{REGION}/{'ab' * 32}.gz"
# The variants issue 11 names, and one with a short stopping condition: the deployed settings with one change each.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "spot": {"use_spot": True},
    "tuning": {"tuning_enabled": True},
    "lora": {"method": "lora"},
    "short": {"max_run_seconds": 3600},  # a job that may run an hour: the existing-job states give up sooner
}


@dataclass
class Pipeline:
    """One deployed variant: its settings and spec, and its state machine in the interpreter."""

    settings: Settings
    spec: td.PipelineSpec
    arn: str
    definition: dict[str, Any]


@dataclass
class Account:
    """The resources of the two stacks that the definition names, created in moto's backends."""

    interpreter: StepFunctions
    archive: SyntheticArchive
    http: BlobServer
    role_arn: str
    topic_arn: str
    queue_url: str
    prep_arn: str
    broken_prep_arn: str
    pipelines: dict[tuple[str, str], Pipeline] = field(default_factory=dict)

    def pipeline(self, variant: str = "default", prep: str = "prep") -> Pipeline:
        """The state machine of a variant (built once); `prep="broken"` names a prep function that fails."""
        key = (variant, prep)
        if key not in self.pipelines:
            settings = Settings(region=REGION, **VARIANTS[variant])
            spec = pipeline_spec(
                settings,
                bucket=BUCKET,
                job_role_arn=self.role_arn,
                prep_function_arn=self.prep_arn if prep == "prep" else self.broken_prep_arn,
                topic_arn=self.topic_arn,
                source_s3_uri=SOURCE_URI,
            )
            document = td.definition(spec)
            arn = self.interpreter.create_state_machine(document, name=f"{variant}-{prep}")
            self.pipelines[key] = Pipeline(settings, spec, arn, document)
        return self.pipelines[key]

    def notifications(self) -> list[dict[str, Any]]:
        """The failure e-mails' content: what SNS delivered to a queue subscribed to the topic."""
        sqs = self.interpreter.client("sqs")
        received = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        for message in received:
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in received]


def minimal_training_job(name: str, role_arn: str) -> dict[str, Any]:
    """A CreateTrainingJob request with the required members only."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "RoleArn": role_arn,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


@pytest.fixture(scope="package")
def engine() -> Iterator[JsonataEngine]:
    with JsonataEngine() as running:
        yield running


@pytest.fixture(scope="package")
def account(engine: JsonataEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    # All 693 UK-Abs training judgments, so that the deployed default doc_count runs; a few words each.
    archive = build_synthetic_archive(
        tmp_path_factory.mktemp("archive") / "dataset.zip", uk_train_docs=693, uk_test_docs=100, judgment_words=12,
        summary_words=6,
    )  # fmt: skip
    with BlobServer(archive.data) as http, StepFunctions(engine) as interpreter:
        interpreter.client("s3").create_bucket(Bucket=BUCKET)
        role = interpreter.client("iam").create_role(RoleName="job-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        environment = {  # the dataset stack's, naming the loopback archive
            "DATASET_BUCKET": BUCKET,
            "DOC_COUNT": "693",
            "VALIDATION": "held_out",
            "SOURCE_URL": http.url,
            "EXPECTED_MD5": archive.md5,
        }
        prep = create_prep_function(interpreter, "prep", role, environment)
        broken = create_prep_function(interpreter, "prep-wrong-md5", role, {**environment, "EXPECTED_MD5": "0" * 32})
        topic = interpreter.client("sns").create_topic(Name="training-failures")["TopicArn"]
        sqs = interpreter.client("sqs")
        queue_url = sqs.create_queue(QueueName="mailbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        interpreter.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield Account(interpreter, archive, http, role, topic, queue_url, prep, broken)


@pytest.fixture
def sf(account: Account) -> Iterator[StepFunctions]:
    """The interpreter, with nothing scripted and nothing recorded yet."""
    interpreter = account.interpreter
    interpreter.sagemaker.clear()
    interpreter.clock.clear()
    interpreter.lambdas.invocations.clear()
    account.notifications()
    yield interpreter
    interpreter.sagemaker.clear()


Runner = Callable[..., Execution]


@pytest.fixture
def run(account: Account, sf: StepFunctions) -> Runner:
    """`run(input, variant=..., name=...)`: one execution of a variant's state machine, to its end."""

    def execute(execution_input: Any = None, *, variant: str = "default", prep: str = "prep", name: str | None = None
                ) -> Execution:  # fmt: skip
        return sf.run(account.pipeline(variant, prep).arn, execution_input, name=name)

    return execute
