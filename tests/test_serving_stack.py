"""Fine-grained assertions on the serving stack: switches, container settings, autoscaling, alarms, dashboard,
security; plus the pure pieces (image pin, GPU memory model) and a snapshot of the stack with both endpoints."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from syrupy.assertion import SnapshotAssertion

from config import HOSTING_INSTANCE_TYPES, InstanceFacts, SettingError, load_settings
from stacks.app_builder import build_pipeline
from stacks.constructs.dataset_bucket import DatasetBucket
from stacks.constructs.endpoint import (
    HEALTH_CHECK_MARGIN_SECONDS,
    MAX_VARIANT_TIMEOUT_SECONDS,
    GptjEndpoint,
    HubWeights,
    startup_health_check_seconds,
)
from stacks.constructs.notification_topic import NotificationTopic
from stacks.constructs.serving_container import (
    FULL_SEQUENCE_GIB,
    MODEL_LOADING_SECONDS,
    WEIGHTS_GIB,
    container_settings,
    holds_gptj,
    image_runs_on,
    suitable_instance_types,
)
from stacks.serving_image import (
    INFERENCE_AMI_VERSION,
    LMI_TAG,
    VLLM_GPU_ARCHITECTURES,
    lmi_image,
)
from stacks.serving_stack import BASE_MODEL_ID, BASE_MODEL_REVISION, BASE_OUTPUT, FINE_TUNED_OUTPUT
from tests.synth import CONFIGURATIONS, Assembly, context_with, normalized, synth

STACK = "LegalGptjServing"
DLC_ACCOUNT = "763104351884"
IMAGE = f"djl-inference:{LMI_TAG}"
SAGEMAKER_TYPES = ("AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint")
BILLABLE_TYPES = (
    *SAGEMAKER_TYPES,
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::IAM::Role",
    "AWS::KMS::Key",  # $1 a month each
)
FINE_TUNED = CONFIGURATIONS["fine_tuned_endpoint_eu_west_1"]
JOB = str(FINE_TUNED["fine_tuned_job"])


def app_for(name: str) -> Assembly:
    return synth(**CONFIGURATIONS[name])


def resources(app: Assembly, resource_type: str) -> dict[str, dict[str, Any]]:
    return app.resources(STACK, resource_type)


def only(app: Assembly, resource_type: str, containing: str = "") -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in resources(app, resource_type).items() if containing in k]
    assert len(found) == 1, found
    return found[0]


def props(app: Assembly, resource_type: str, containing: str = "") -> dict[str, Any]:
    return only(app, resource_type, containing)[1]["Properties"]


def outputs(app: Assembly) -> dict[str, Any]:
    result: dict[str, Any] = app.templates[STACK].get("Outputs", {})
    return result


def endpoint_name_ref(app: Assembly, label: str) -> dict[str, Any]:
    logical_id, _ = only(app, "AWS::SageMaker::Endpoint", label)
    return {"Fn::GetAtt": [logical_id, "EndpointName"]}


# --- switches -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "retain_data"])
def test_no_switch_no_endpoint_nothing_that_bills(name: str) -> None:
    app = app_for(name)
    assert STACK in app.templates, "the stack always exists, so that turning endpoints off removes them"
    for resource_type in BILLABLE_TYPES:
        assert resources(app, resource_type) == {}, resource_type
    assert set(resources(app, "AWS::SNS::Topic")) == {"AlarmsTopic3A2DFEBA"}
    assert set(outputs(app)) == {"AlarmTopicArn"}
    # Encrypted all the same, with SNS's AWS-managed key: no alarm publishes, so no key of our own is needed.
    assert props(app, "AWS::SNS::Topic")["KmsMasterKeyId"] == "alias/aws/sns"


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("base_endpoint", ["Base"]),
        ("fine_tuned_endpoint_eu_west_1", ["FineTuned"]),
        ("both_endpoints_g5_48xlarge", ["Base", "FineTuned"]),
    ],
)
def test_each_switch_adds_exactly_its_endpoint(name: str, labels: list[str]) -> None:
    app = app_for(name)
    for resource_type in SAGEMAKER_TYPES:
        found = sorted(resources(app, resource_type))
        assert [label for label in labels if any(k.startswith(label) for k in found)] == labels
        assert len(found) == len(labels), (resource_type, found)
    assert len(resources(app, "AWS::CloudWatch::Dashboard")) == 1
    expected = {"AlarmTopicArn", "DashboardName"}
    expected |= {BASE_OUTPUT} if "Base" in labels else set()
    expected |= {FINE_TUNED_OUTPUT, "FineTunedModelData"} if "FineTuned" in labels else set()
    assert set(outputs(app)) == expected
    for label in labels:
        output = BASE_OUTPUT if label == "Base" else FINE_TUNED_OUTPUT
        assert outputs(app)[output]["Value"] == endpoint_name_ref(app, label)


def test_serving_stack_is_deployed_after_the_dataset_stack() -> None:
    manifest = json.loads((app_for("fine_tuned_endpoint_eu_west_1").outdir / "manifest.json").read_text())
    assert "LegalGptjDataset" in manifest["artifacts"][STACK]["dependencies"]


# --- models ---------------------------------------------------------------------------------------------------


def test_base_model_downloads_the_pinned_hub_revision_without_network_isolation() -> None:
    model = props(app_for("base_endpoint"), "AWS::SageMaker::Model")
    container = model["PrimaryContainer"]
    assert container["Environment"]["HF_MODEL_ID"] == BASE_MODEL_ID == "EleutherAI/gpt-j-6b"
    assert container["Environment"]["OPTION_REVISION"] == BASE_MODEL_REVISION == "float16"
    assert "ModelDataSource" not in container and "ModelDataUrl" not in container
    # The container fetches the weights from the Hub itself: isolating it would make the download impossible.
    assert model["EnableNetworkIsolation"] is False
    (skip,) = only(app_for("base_endpoint"), "AWS::SageMaker::Model")[1]["Metadata"]["checkov"]["skip"]
    assert skip["id"] == "CKV_AWS_370" and "Hugging Face Hub" in skip["comment"]


def test_fine_tuned_model_is_the_jobs_uncompressed_prefix_with_network_isolation() -> None:
    app = app_for("fine_tuned_endpoint_eu_west_1")
    model = props(app, "AWS::SageMaker::Model")
    container = model["PrimaryContainer"]
    source = container["ModelDataSource"]["S3DataSource"]
    assert (source["S3DataType"], source["CompressionType"]) == ("S3Prefix", "None")
    bucket, suffix = source["S3Uri"]["Fn::Join"][1][1:]
    assert bucket["Fn::GetStackOutput"]["StackName"] == "LegalGptjDataset"
    assert "StoreBucket4FBDE984" in bucket["Fn::GetStackOutput"]["OutputName"]
    assert suffix == f"/models/{JOB}/output/model/"
    assert model["EnableNetworkIsolation"] is True
    assert "checkov" not in only(app, "AWS::SageMaker::Model")[1].get("Metadata", {}), "isolated: nothing to skip"
    assert container["Environment"]["HF_MODEL_ID"] == "/opt/ml/model"
    assert container["Environment"]["HF_HUB_OFFLINE"] == "1"
    assert "OPTION_REVISION" not in container["Environment"]
    assert outputs(app)["FineTunedModelData"]["Value"] == source["S3Uri"]


# Both hit the cap of 64 sequences: ml.g5.12xlarge's KV cache is 4 x (24 x 0.9 - 1.5) - 11.28 = 69.1 GiB, 79 full
# sequences of 0.875 GiB; ml.g5.48xlarge's 8 x 20.1 - 11.28 = 149.5 GiB, 170 (uncapped cases: test_gpu_memory_model).
@pytest.mark.parametrize(
    ("name", "tensor_parallel", "batch"), [("base_endpoint", "4", "64"), ("both_endpoints_g5_48xlarge", "8", "64")]
)
def test_container_settings_follow_the_instance_type(name: str, tensor_parallel: str, batch: str) -> None:
    models = resources(app_for(name), "AWS::SageMaker::Model").values()
    assert models
    for model in models:
        env = model["Properties"]["PrimaryContainer"]["Environment"]
        assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == tensor_parallel
        assert env["OPTION_DTYPE"] == "bf16"  # every accepted GPU has it (test_every_accepted_type_has_bf16)
        assert env["OPTION_MAX_ROLLING_BATCH_SIZE"] == batch
        assert env["OPTION_MAX_MODEL_LEN"] == "2048"
        assert env["OPTION_GPU_MEMORY_UTILIZATION"] == "0.9"
        # vLLM's async handler: the recommended (and, from LMI v17, default) mode, set explicitly.
        assert (env["OPTION_ASYNC_MODE"], env["OPTION_ROLLING_BATCH"]) == ("true", "disable")
        assert env["OPTION_ENTRYPOINT"] == "djl_python.lmi_vllm.vllm_async_service"
        # On sm_80 and newer vLLM picks its attention backend itself (FlashAttention); nothing overrides it.
        assert not {"OPTION_ATTENTION_BACKEND", "VLLM_ATTENTION_BACKEND"} & set(env)


@pytest.mark.parametrize(
    ("name", "labels"), [("base_endpoint", ["Base"]), ("both_endpoints_g5_48xlarge", ["Base", "FineTuned"])]
)
def test_the_container_gives_up_loading_before_the_health_check_does(name: str, labels: list[str]) -> None:
    """LMI's image gives up loading after 1200 s unless told otherwise; the docs promise 30 minutes. SageMaker's
    first health check waits five minutes longer, so that a model that does not load fails in the container, which
    logs why, rather than by SageMaker's timeout, which says only that the health check did not pass."""
    app = app_for(name)
    for label in labels:
        env = props(app, "AWS::SageMaker::Model", label)["PrimaryContainer"]["Environment"]
        (variant,) = props(app, "AWS::SageMaker::EndpointConfig", label)["ProductionVariants"]
        assert env["OPTION_MODEL_LOADING_TIMEOUT"] == str(MODEL_LOADING_SECONDS) == "1800"
        health_check = variant["ContainerStartupHealthCheckTimeoutInSeconds"]
        assert health_check == MODEL_LOADING_SECONDS + HEALTH_CHECK_MARGIN_SECONDS == 2100
        assert int(env["OPTION_MODEL_LOADING_TIMEOUT"]) < health_check <= MAX_VARIANT_TIMEOUT_SECONDS


def test_the_health_check_stays_within_sagemakers_limit() -> None:
    import botocore.loaders

    api = botocore.loaders.Loader().load_service_model("sagemaker", "service-2")
    variant = api["shapes"]["ProductionVariant"]["members"]
    for member in ("ContainerStartupHealthCheckTimeoutInSeconds", "ModelDataDownloadTimeoutInSeconds"):
        assert api["shapes"][variant[member]["shape"]]["max"] == MAX_VARIANT_TIMEOUT_SECONDS, member
    assert startup_health_check_seconds(MAX_VARIANT_TIMEOUT_SECONDS - HEALTH_CHECK_MARGIN_SECONDS) == 3600
    with pytest.raises(ValueError, match="exceeds SageMaker's 3600 s limit"):
        startup_health_check_seconds(MAX_VARIANT_TIMEOUT_SECONDS - HEALTH_CHECK_MARGIN_SECONDS + 1)


@pytest.mark.parametrize(
    ("name", "region"), [("both_endpoints_g5_48xlarge", "us-east-1"), ("fine_tuned_endpoint_eu_west_1", "eu-west-1")]
)
def test_image_is_the_pinned_lmi_tag_from_the_regions_dlc_account(name: str, region: str) -> None:
    models = resources(app_for(name), "AWS::SageMaker::Model").values()
    images = {model["Properties"]["PrimaryContainer"]["Image"] for model in models}
    assert images == {f"{DLC_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{IMAGE}"}


def test_image_resolution_is_offline_and_partition_aware() -> None:
    assert lmi_image("eu-west-1").repository_arn == f"arn:aws:ecr:eu-west-1:{DLC_ACCOUNT}:repository/djl-inference"
    china = lmi_image("cn-north-1")
    assert china.uri == f"727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/{IMAGE}"
    assert china.repository_arn.startswith("arn:aws-cn:ecr:cn-north-1:727897471807:")
    assert re.fullmatch(r"\d+\.\d+\.\d+-lmi\d+\.\d+\.\d+-cu\d{3}", LMI_TAG)
    with pytest.raises(ValueError, match="no deep learning container account"):
        lmi_image("xx-nowhere-1")


def image_cuda(tag: str) -> tuple[int, int]:
    """The CUDA an LMI tag is built for, from its suffix: `-cu130` is 13.0, `-cu128` 12.8 (DLC tag convention)."""
    suffix = re.fullmatch(r".+-cu(\d+)(\d)", tag)
    assert suffix, tag
    return int(suffix[1]), int(suffix[2])


def ami_documentation(version: str) -> str:
    """The entry of botocore's ProductionVariant.InferenceAmiVersion documentation for one host image."""
    import botocore.loaders

    api = botocore.loaders.Loader().load_service_model("sagemaker", "service-2")
    documentation = api["shapes"]["ProductionVariant"]["members"]["InferenceAmiVersion"]["documentation"]
    assert f"<dt>{version}</dt>" in documentation, version
    entry: str = documentation.split(f"<dt>{version}</dt>")[1].split("</dd>")[0]
    return entry


def ami_cuda(version: str) -> tuple[int, int]:
    (found,) = re.findall(r"CUDA version: (\d+)\.(\d+)", ami_documentation(version))
    return int(found[0]), int(found[1])


def test_the_cuda_readers_read_what_they_say() -> None:
    assert image_cuda("0.36.0-lmi19.0.0-cu128") == (12, 8) and image_cuda("0.36.0-lmi28.0.0-cu130") == (13, 0)
    assert ami_cuda("al2-ami-sagemaker-inference-gpu-2") < ami_cuda("al2023-ami-sagemaker-inference-gpu-4-1")


def test_the_pin_is_lmi_v28_for_cuda_13_0() -> None:
    # aws/deep-learning-containers docs/src/data/djl-inference/0.36-lmi28.0.0-gpu.yml: "cuda: cu130",
    # "engine: LMI 28.0.0, vLLM 0.26.0", tags "0.36.0-lmi28.0.0-cu130". Why not lmi29: docs/decisions.md S1.
    assert LMI_TAG == "0.36.0-lmi28.0.0-cu130"
    assert image_cuda(LMI_TAG) == (13, 0)


def test_the_host_images_driver_runs_the_images_cuda() -> None:
    # SageMaker's default for g4dn and g5 is driver 470 (CUDA 11.4). A driver runs every CUDA up to its own, so the
    # host image's CUDA (botocore's documentation of it) must be at least the image's (its tag's suffix). Every
    # endpoint configuration names this one host image (test_endpoint_configs_size_the_variant_...).
    assert ami_cuda(INFERENCE_AMI_VERSION) >= image_cuda(LMI_TAG)


def test_the_host_image_is_one_cloudformation_and_the_sagemaker_api_accept() -> None:
    import botocore.loaders
    import cfnlint.schema

    api = botocore.loaders.Loader().load_service_model("sagemaker", "service-2")
    assert INFERENCE_AMI_VERSION in api["shapes"]["ProductionVariantInferenceAmiVersion"]["enum"]
    entry = ami_documentation(INFERENCE_AMI_VERSION)
    assert "NVIDIA driver version: 580" in entry and "CUDA version: 13.0" in entry
    schema = cfnlint.schema.PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::SageMaker::EndpointConfig")
    variant = schema.schema["definitions"]["ProductionVariant"]["properties"]["InferenceAmiVersion"]
    assert INFERENCE_AMI_VERSION in variant["enum"]


# --- endpoint configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "instance_type", "count"),
    [
        ("base_endpoint", "ml.g5.12xlarge", 1),
        ("fine_tuned_endpoint_eu_west_1", "ml.g5.12xlarge", 1),
        ("both_endpoints_g5_48xlarge", "ml.g5.48xlarge", 2),
    ],
)
def test_endpoint_configs_size_the_variant_and_omit_the_volume_key_on_nvme_types(
    name: str, instance_type: str, count: int
) -> None:
    for _, config in resources(app_for(name), "AWS::SageMaker::EndpointConfig").items():
        properties = config["Properties"]
        (variant,) = properties["ProductionVariants"]
        assert variant["VariantName"] == "AllTraffic"
        assert variant["InstanceType"] == instance_type
        assert variant["InitialInstanceCount"] == count
        assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 2100
        assert variant["ModelDataDownloadTimeoutInSeconds"] == 1800
        assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
        assert variant["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"
        assert HOSTING_INSTANCE_TYPES[instance_type].local_nvme
        assert "KmsKeyId" not in properties, "SageMaker rejects a volume key on instance types with local NVMe"


def test_volume_key_is_set_on_an_ebs_only_instance_type() -> None:
    # No EBS-only GPU type is in the hosting table today, so the endpoint construct is built directly with one.
    app = cdk.App(context=context_with())
    stack = cdk.Stack(app, "Probe", env=cdk.Environment(region="us-east-1"))
    store = DatasetBucket(stack, "Store", retain=False)
    topic = NotificationTopic(stack, "Topic", email="").topic
    GptjEndpoint(
        stack,
        "Ebs",
        label="probe",
        weights=HubWeights(BASE_MODEL_ID, BASE_MODEL_REVISION),
        image=lmi_image("us-east-1"),
        instance_type="ml.g5.xlarge",
        instance=InstanceFacts(1, 24, "ampere", local_nvme=False),
        container=container_settings("ml.g5.xlarge"),
        volume_key=store.key,
        settings=load_settings(context_with()),
        alarm_topic=topic,
    )
    key_id = stack.get_logical_id(store.key.node.default_child)  # type: ignore[arg-type]
    assertions.Template.from_stack(stack).has_resource_properties(
        "AWS::SageMaker::EndpointConfig", {"KmsKeyId": {"Fn::GetAtt": [key_id, "Arn"]}}
    )


def test_endpoints_are_named_after_the_stack_and_log_to_a_declared_group() -> None:
    app = app_for("both_endpoints_g5_48xlarge")
    for label, name in (("Base", "LegalGptjServing-base"), ("FineTuned", "LegalGptjServing-fine-tuned")):
        _, endpoint = only(app, "AWS::SageMaker::Endpoint", label)
        config_id, _ = only(app, "AWS::SageMaker::EndpointConfig", label)
        log_group_id, log_group = only(app, "AWS::Logs::LogGroup", label)
        assert endpoint["Properties"] == {
            "EndpointName": name,
            "EndpointConfigName": {"Fn::GetAtt": [config_id, "EndpointConfigName"]},
            "Tags": [{"Key": "project", "Value": "legal-gptj"}],
        }
        # SageMaker would otherwise create /aws/sagemaker/Endpoints/<name> itself: no retention, kept after destroy.
        assert log_group["Properties"]["LogGroupName"] == f"/aws/sagemaker/Endpoints/{name}"
        assert log_group["Properties"]["RetentionInDays"] == 30
        assert log_group["DeletionPolicy"] == "Delete"
        assert log_group_id in endpoint["DependsOn"]


# --- instance type check --------------------------------------------------------------------------------------


def test_gpu_memory_model() -> None:
    assert round(WEIGHTS_GIB, 2) == 11.28
    assert FULL_SEQUENCE_GIB == 0.875
    assert not holds_gptj(HOSTING_INSTANCE_TYPES["ml.g4dn.xlarge"])  # one 16 GB T4: weights fit, almost no cache
    assert holds_gptj(HOSTING_INSTANCE_TYPES["ml.g4dn.12xlarge"])  # memory is not why g4dn is refused
    assert holds_gptj(HOSTING_INSTANCE_TYPES["ml.g5.xlarge"])
    # The sequences one instance holds at full length, from the model in serving_container.py's docstring:
    # one A10G: 24 x 0.9 - 1.5 - 11.28 = 8.82 GiB of cache, 10 sequences; one L40S: 48 x 0.9 - 1.5 - 11.28 =
    # 30.42 GiB, 34; eight A10Gs: 8 x 20.1 - 11.28 = 149.5 GiB, 170, capped at 64.
    expected = {"ml.g5.xlarge": (1, 10), "ml.g6e.xlarge": (1, 34), "ml.g5.48xlarge": (8, 64)}
    for instance_type, (tensor_parallel, sequences) in expected.items():
        settings = container_settings(instance_type)
        assert (settings.tensor_parallel_degree, settings.dtype, settings.max_rolling_batch_size) == (
            tensor_parallel,
            "bf16",
            sequences,
        ), instance_type
    assert container_settings("ml.p5.48xlarge").tensor_parallel_degree == 8


@pytest.mark.parametrize(
    ("facts", "why"),
    [
        (InstanceFacts(1, 16, "ampere", True), "one 16 GB GPU: 16 x 0.9 - 1.5 - 11.28 = 1.6 GiB, under 4 x 0.875"),
        (InstanceFacts(3, 24, "ampere", True), "3 GPUs do not divide GPT-J's 16 heads"),
    ],
)
def test_the_memory_check_still_refuses_a_gpu_the_image_runs_on(
    facts: InstanceFacts, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No type of the table fails on memory alone any more (the small ones were all T4s): a made-up row shows it.
    monkeypatch.setitem(HOSTING_INSTANCE_TYPES, "ml.made-up.xlarge", facts)
    assert image_runs_on(facts) and not holds_gptj(facts), why
    assert "ml.made-up.xlarge" not in suitable_instance_types()
    with pytest.raises(SettingError, match=r"^invalid setting endpoint_instance_type='ml.made-up.xlarge': expected "):
        container_settings("ml.made-up.xlarge")


TURING_TYPES = sorted(name for name, facts in HOSTING_INSTANCE_TYPES.items() if facts.gpu_arch == "turing")


def test_the_image_has_kernels_for_the_architectures_its_wheel_is_built_for() -> None:
    """The constant is the build list the sources give (stacks/serving_image.py): lmi27's "Wheel arches:
    sm_80/86/89/90/100/120" and lmi29's `TORCH_CUDA_ARCH_LIST=8.0;8.6;8.9;9.0;10.0;12.0`; Turing's sm_75 is in
    neither, and the settings still accept its types (only synth refuses them)."""
    built = {cap for caps in VLLM_GPU_ARCHITECTURES.values() for cap in caps}
    assert built == {"sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120"}
    assert "turing" not in VLLM_GPU_ARCHITECTURES and "volta" not in VLLM_GPU_ARCHITECTURES
    assert TURING_TYPES == ["ml.g4dn.12xlarge", "ml.g4dn.2xlarge", "ml.g4dn.xlarge"]
    for instance_type in TURING_TYPES:
        assert load_settings(context_with(endpoint_instance_type=instance_type)).endpoint_instance_type


def test_no_suitable_type_is_one_the_image_has_no_kernels_for() -> None:
    suitable = suitable_instance_types()
    assert suitable and not set(TURING_TYPES) & set(suitable)
    assert {HOSTING_INSTANCE_TYPES[name].gpu_arch for name in suitable} <= set(VLLM_GPU_ARCHITECTURES)
    # Every other type of the table is suitable: nothing else is refused by the architecture check.
    assert sorted(set(HOSTING_INSTANCE_TYPES) - set(TURING_TYPES)) == suitable


def test_every_accepted_type_has_bf16() -> None:
    # What lets the container drop fp16: it was for Turing only, and every type left computes in bf16.
    assert all(HOSTING_INSTANCE_TYPES[name].supports_bf16 for name in suitable_instance_types())


@pytest.mark.parametrize("instance_type", TURING_TYPES)
def test_a_turing_type_is_a_one_line_setting_error_naming_both_reasons(instance_type: str) -> None:
    context = context_with(deploy_base_endpoint=True, endpoint_instance_type=instance_type)
    with pytest.raises(SettingError) as error:
        build_pipeline(cdk.App(context=context), load_settings(context))
    message = str(error.value)
    assert error.value.key == "endpoint_instance_type"
    assert "\n" not in message
    assert message.startswith(f"invalid setting endpoint_instance_type='{instance_type}': expected one of ml.g5.")
    expected = message.split("expected one of ")[1].split(" (")[0].split(", ")
    assert expected == suitable_instance_types()
    assert "GPT-J-6B needs 11.3 GiB of 16-bit weights plus KV cache for 4 full 2048-token sequences" in message
    assert "the serving image's vLLM has CUDA kernels for sm_80 and newer only, none for Turing: ml.g4dn" in message


def test_the_instance_type_is_not_checked_while_no_endpoint_is_requested() -> None:
    context = context_with(endpoint_instance_type="ml.g4dn.xlarge")
    stacks = build_pipeline(cdk.App(context=context), load_settings(context))
    assert stacks.serving.endpoints == []


# --- autoscaling ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "low", "high", "target", "scale_in", "scale_out"),
    [("base_endpoint", 1, 2, 10, 900, 300), ("both_endpoints_g5_48xlarge", 2, 4, 25, 600, 120)],
)
def test_autoscaling_tracks_invocations_per_instance(
    name: str, low: int, high: int, target: int, scale_in: int, scale_out: int
) -> None:
    app = app_for(name)
    targets = resources(app, "AWS::ApplicationAutoScaling::ScalableTarget")
    endpoints = resources(app, "AWS::SageMaker::Endpoint")
    assert len(targets) == len(endpoints)
    for logical_id, target_resource in targets.items():
        scalable = target_resource["Properties"]
        label = logical_id.split("Scaling")[0]
        assert scalable["ResourceId"] == {
            "Fn::Join": ["", ["endpoint/", endpoint_name_ref(app, label), "/variant/AllTraffic"]]
        }
        assert scalable["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
        assert scalable["ServiceNamespace"] == "sagemaker"
        assert (scalable["MinCapacity"], scalable["MaxCapacity"]) == (low, high)
        # Left out so that Application Auto Scaling uses its SageMaker service-linked role.
        assert "RoleARN" not in scalable
        policy = props(app, "AWS::ApplicationAutoScaling::ScalingPolicy", label)
        assert policy["PolicyType"] == "TargetTrackingScaling"
        assert policy["ScalingTargetId"] == {"Ref": logical_id}
        assert policy["TargetTrackingScalingPolicyConfiguration"] == {
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "TargetValue": target,
            "ScaleInCooldown": scale_in,
            "ScaleOutCooldown": scale_out,
        }


# --- alarms and dashboard -------------------------------------------------------------------------------------


def alarms_of(app: Assembly, label: str) -> dict[str, dict[str, Any]]:
    found = {
        k.removeprefix(f"{label}Alarms")[:-8]: v["Properties"]
        for k, v in resources(app, "AWS::CloudWatch::Alarm").items()
        if k.startswith(f"{label}Alarms")
    }
    assert set(found) == {"ServerErrors", "ModelLatency", "GpuMemory", "Idle"}
    return found


@pytest.mark.parametrize(
    ("name", "labels", "idle_hours", "gpus"),
    [
        ("fine_tuned_endpoint_eu_west_1", ["FineTuned"], 6, 4),
        ("both_endpoints_g5_48xlarge", ["Base", "FineTuned"], 12, 8),
    ],
)
def test_four_alarms_per_endpoint_all_to_the_topic(name: str, labels: list[str], idle_hours: int, gpus: int) -> None:
    app = app_for(name)
    topic_id = only(app, "AWS::SNS::Topic")[0]
    assert len(resources(app, "AWS::CloudWatch::Alarm")) == 4 * len(labels)
    for label in labels:
        alarms = alarms_of(app, label)
        dimensions = [
            {"Name": "EndpointName", "Value": endpoint_name_ref(app, label)},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ]
        for alarm in alarms.values():
            assert alarm["AlarmActions"] == [{"Ref": topic_id}]
            assert alarm["Dimensions"] == dimensions
        errors, latency, memory, idle = (alarms[k] for k in ("ServerErrors", "ModelLatency", "GpuMemory", "Idle"))
        assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
            "AWS/SageMaker",
            "Invocation5XXErrors",
            "Sum",
        )
        assert (errors["Threshold"], errors["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert errors["TreatMissingData"] == "notBreaching"
        # A statistic SageMaker documents for ModelLatency (Average, Sum, Min, Max, Sample Count): no percentile.
        assert (latency["MetricName"], latency["Statistic"]) == ("ModelLatency", "Average")
        assert "ExtendedStatistic" not in latency
        assert latency["Threshold"] == 30_000_000  # microseconds
        assert (latency["EvaluationPeriods"], latency["DatapointsToAlarm"], latency["Period"]) == (3, 3, 300)
        assert latency["TreatMissingData"] == "notBreaching"
        assert (memory["Namespace"], memory["MetricName"]) == ("/aws/sagemaker/Endpoints", "GPUMemoryUtilization")
        # Summed over the GPUs; above vLLM's 90 % reservation plus 5 points.
        assert memory["Threshold"] == 95 * gpus
        assert memory["ComparisonOperator"] == "GreaterThanThreshold"
        assert (idle["MetricName"], idle["Statistic"], idle["Period"]) == ("Invocations", "Sum", 3600)
        assert (idle["EvaluationPeriods"], idle["DatapointsToAlarm"]) == (idle_hours, idle_hours)
        assert (idle["Threshold"], idle["ComparisonOperator"]) == (1, "LessThanThreshold")
        # No invocations means no datapoints: the silence itself is what the idle alarm is for.
        assert idle["TreatMissingData"] == "breaching"


def test_alarm_topic_is_tls_only_and_subscribes_the_notification_email() -> None:
    app = app_for("both_endpoints_g5_48xlarge")
    subscription = props(app, "AWS::SNS::Subscription")
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ops@example.com")
    assert resources(app_for("base_endpoint"), "AWS::SNS::Subscription") == {}
    policy = props(app, "AWS::SNS::TopicPolicy")
    assert any(
        s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in policy["PolicyDocument"]["Statement"]
    )


def key_statements(app: Assembly) -> dict[str, dict[str, Any]]:
    # Rotation, pending window and deletion policy of every key: tests/test_encryption.py.
    _, key = only(app, "AWS::KMS::Key", "TelemetryKey")
    return {s.get("Sid", "account"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}


@pytest.mark.parametrize(
    ("name", "region"), [("both_endpoints_g5_48xlarge", "us-east-1"), ("fine_tuned_endpoint_eu_west_1", "eu-west-1")]
)
def test_with_endpoints_one_key_encrypts_the_topic_and_the_log_groups(name: str, region: str) -> None:
    app = app_for(name)
    key_id, _ = only(app, "AWS::KMS::Key")
    assert props(app, "AWS::SNS::Topic")["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    groups = resources(app, "AWS::Logs::LogGroup")
    assert groups and all(g["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]} for g in groups.values())
    statements = key_statements(app)
    assert set(statements) == {"account", "CloudWatchLogsOfThisAccount", "CloudWatchAlarms"}
    # The statements' exact content, in every stack: tests/test_encryption.py.
    assert statements["CloudWatchLogsOfThisAccount"]["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}
    alarms = statements["CloudWatchAlarms"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]


def test_one_dashboard_graphs_every_endpoint() -> None:
    app = app_for("both_endpoints_g5_48xlarge")
    body = json.dumps(props(app, "AWS::CloudWatch::Dashboard")["DashboardBody"])
    for label in ("Base", "FineTuned"):
        assert json.dumps(endpoint_name_ref(app, label)) in body
    for metric in ("Invocations", "ModelLatency", "Invocation5XXErrors", "GPUMemoryUtilization", "GPUUtilization"):
        assert f'\\"{metric}\\"' in body, metric
    assert "p50" not in body and "p90" not in body, "no percentile of ModelLatency is documented"
    for alarm_id in resources(app, "AWS::CloudWatch::Alarm"):  # the alarm status widget lists every alarm
        assert json.dumps({"Fn::GetAtt": [alarm_id, "Arn"]}) in body, alarm_id
    assert resources(app_for("default"), "AWS::CloudWatch::Dashboard") == {}


# --- security -------------------------------------------------------------------------------------------------


def policy_statements(app: Assembly, label: str) -> list[dict[str, Any]]:
    role_id, role = only(app, "AWS::IAM::Role", f"{label}Execution")
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in role["Properties"] and "Policies" not in role["Properties"]
    policies = [
        p["Properties"]
        for p in resources(app, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    assert len(policies) == 1
    statements: list[dict[str, Any]] = policies[0]["PolicyDocument"]["Statement"]
    return statements


def common_statements(app: Assembly, label: str, region: str) -> list[dict[str, Any]]:
    log_group_id = only(app, "AWS::Logs::LogGroup", label)[0]
    return [
        {
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Effect": "Allow",
            "Resource": f"arn:aws:ecr:{region}:{DLC_ACCOUNT}:repository/djl-inference",
        },
        {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*"},
        {
            "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [log_group_id, "Arn"]},
        },
        {
            "Action": "cloudwatch:PutMetricData",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
            "Effect": "Allow",
            "Resource": "*",
        },
    ]


def test_the_base_endpoint_role_has_no_data_access() -> None:
    app = app_for("both_endpoints_g5_48xlarge")
    assert policy_statements(app, "Base") == common_statements(app, "Base", "us-east-1"), "no S3 or KMS"
    roles = {
        only(app, "AWS::SageMaker::Model", label)[1]["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
        for label in ("Base", "FineTuned")
    }
    assert len(roles) == 2, "each endpoint has its own role"


@pytest.mark.parametrize(
    ("name", "region"), [("both_endpoints_g5_48xlarge", "us-east-1"), ("fine_tuned_endpoint_eu_west_1", "eu-west-1")]
)
def test_the_fine_tuned_endpoint_role_reads_its_model_prefix_only(name: str, region: str) -> None:
    app = app_for(name)
    fine_tuned = policy_statements(app, "FineTuned")
    assert fine_tuned[:4] == common_statements(app, "FineTuned", region)
    read, listing, decrypt = fine_tuned[4:]
    job = str(CONFIGURATIONS[name]["fine_tuned_job"])
    assert read["Action"] == "s3:GetObject"
    assert read["Resource"]["Fn::Join"][1][1] == f"/models/{job}/output/model/*"
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"models/{job}/output/model/*"]}}
    assert decrypt["Action"] == "kms:Decrypt"
    assert "StoreKey" in decrypt["Resource"]["Fn::GetStackOutput"]["OutputName"]


def test_model_waits_for_its_roles_policy() -> None:
    app = app_for("both_endpoints_g5_48xlarge")
    for label in ("Base", "FineTuned"):
        _, model = only(app, "AWS::SageMaker::Model", label)
        policy_id = only(app, "AWS::IAM::Policy", f"{label}Execution")[0]
        assert policy_id in model["DependsOn"]


def test_wildcards_are_acknowledged_per_finding() -> None:
    metadata = only(app_for("both_endpoints_g5_48xlarge"), "AWS::IAM::Policy", "BaseExecution")[1]["Metadata"]
    ids = {rule["id"] for rule in metadata["cdk_nag"]["rules_to_suppress"]}
    assert ids == {"AwsSolutions-IAM5[Resource::*]"}


# --- snapshot -------------------------------------------------------------------------------------------------


def test_snapshot_with_both_endpoints(json_snapshot: SnapshotAssertion) -> None:
    """The review copy of what `deploy_base_endpoint=true fine_tuned_job=...` deploys (the default has none)."""
    assert normalized(app_for("both_endpoints_g5_48xlarge").templates[STACK]) == json_snapshot
