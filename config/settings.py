"""One typed, validated settings object: a settings file's values with `-c key=value` overrides on top
(config/environment.py layers them).

Every key is a field of `Settings` with its default, the allowed values and its meaning in the field's metadata;
the README's configuration table is generated from the same metadata (`python -m config --markdown`).
A bad value raises `SettingError`, whose message is one line naming the key, the value given and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from config.instance_types import HOSTING_INSTANCE_TYPES, TRAINING_INSTANCE_TYPES

UK_ABS_TRAIN_DOCUMENTS = 693
# What a training run may be given, here and per execution (the state machine's input check, `make train`).
EPOCHS_RANGE = (1, 100)
METHODS = ("full", "lora")
ZENODO_DATASET_URL = "https://zenodo.org/records/7152317/files/dataset.zip?download=1"
# Seen only in a third-party configuration (DESIGN.md §2): a mismatch stops the prep with both checksums printed.
ZENODO_DATASET_MD5 = "c77948fe580d26200f5c9fe53b81485d"

# Lambda refuses a reservation that leaves an account fewer unreserved concurrent executions than this (or than its
# whole quota, where that is smaller: new accounts get 10), and accounts start with a quota of 1,000.
# docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html; ops/preflight.py checks the real account.
LAMBDA_MIN_UNRESERVED = 100
LAMBDA_DEFAULT_CONCURRENCY_QUOTA = 1000

Check = Callable[[Any], bool]


class SettingError(ValueError):
    """A configuration value is missing, malformed or out of range. The message is one line."""

    def __init__(self, key: str, value: object, allowed: str, *, unknown: bool = False) -> None:
        if unknown:
            close = difflib.get_close_matches(key, _FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            message = f"unknown setting {key}={value!r}: not one of the keys in the README's table{hint}"
        else:
            message = f"invalid setting {key}={value!r}: expected {allowed}"
        super().__init__(message)
        self.key = key


def _setting(default: Any, allowed: str, meaning: str, check: Check | None = None, group: str = "") -> Any:
    return field(
        default=default,
        metadata={"allowed": allowed, "meaning": meaning, "check": check or (lambda _: True), "group": group},
    )


def _integer(default: int, low: int, high: int, meaning: str, group: str, *, also: str = "") -> Any:
    """An integer setting whose allowed text is made from its bounds, so the two cannot disagree."""
    return _setting(default, f"an integer from {low} to {high}{also}", meaning, _between(low, high), group)


def _flag(default: bool, meaning: str, group: str) -> Any:
    return _setting(default, "true or false", meaning, group=group)


def _between(low: float, high: float) -> Check:
    return lambda v: low <= v <= high


def _one_of(*choices: str) -> Check:
    return lambda v: v in choices


def _matches(pattern: str) -> Check:
    compiled = re.compile(pattern)
    return lambda v: compiled.fullmatch(v) is not None


def _is_known_region(name: str) -> bool:
    # The CDK's offline region facts must know the region: they give the deep learning container account. Imported
    # here, when a region is checked: importing the CDK starts its Node.js process, which `make invoke` (it reads a
    # settings file's region only) does without.
    from aws_cdk.region_info import RegionInfo

    return re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", name) is not None and (
        RegionInfo.get(name).dlc_repository_account is not None
    )


_TRAINING_TYPES = ", ".join(sorted(TRAINING_INSTANCE_TYPES))
_HOSTING_TYPES = ", ".join(sorted(HOSTING_INSTANCE_TYPES))


@dataclass(frozen=True)
class Settings:
    # General
    region: str = _setting(
        "",
        "an AWS region with SageMaker deep learning containers, such as us-east-1",
        "Region every stack is synthesized for (no lookups).",
        _is_known_region,
        "general",
    )
    retain_data: bool = _flag(
        False,
        "Keep the dataset bucket (and its objects) on `cdk destroy` instead of emptying and deleting it.",
        "general",
    )
    notification_email: str = _setting(
        "",
        "an e-mail address, or empty for none",
        "Subscribed to the failure and alarm topics (training failures, endpoint alarms).",
        _matches(r"|[^@\s]+@[^@\s]+\.[^@\s]+"),
        "general",
    )
    # Dataset
    doc_count: int = _integer(
        UK_ABS_TRAIN_DOCUMENTS,
        1,
        UK_ABS_TRAIN_DOCUMENTS,
        "UK-Abs training judgments concatenated into the training text (sorted by file name).",
        "dataset",
    )
    validation: str = _setting(
        "held_out",
        "held_out or summaries",
        "Validation text: the 100 held-out test judgments, or the summaries of the training documents "
        "(the original notebook's choice, which leaks training content into evaluation).",
        _one_of("held_out", "summaries"),
        "dataset",
    )
    dataset_url: str = _setting(
        ZENODO_DATASET_URL,
        "an https:// URL",
        "Where the prep downloads dataset.zip from.",
        _matches(r"https://\S+"),
        "dataset",
    )
    dataset_md5: str = _setting(
        ZENODO_DATASET_MD5,
        "32 hexadecimal digits, or empty to skip the check",
        "Pinned md5 of dataset.zip, checked before the archive is opened.",
        _matches(r"|[0-9a-f]{32}"),
        "dataset",
    )
    prep_reserved_concurrency: int = _integer(
        0,
        0,
        LAMBDA_DEFAULT_CONCURRENCY_QUOTA - LAMBDA_MIN_UNRESERVED,
        "Concurrency reserved for the dataset prep Lambda; 0 reserves none. Runs of one dataset take turns without "
        "it (a lock object). Lambda refuses a reservation that leaves the account fewer than 100 unreserved "
        "executions (none at all in new accounts, whose quota is 10): `make preflight` checks the account.",
        "dataset",
        also=" (the default account quota of 1000 less the 100 Lambda keeps unreserved)",
    )
    # Training
    training_instance_type: str = _setting(
        "ml.p3dn.24xlarge",
        f"one of {_TRAINING_TYPES}",
        "SageMaker training instance type.",
        _one_of(*TRAINING_INSTANCE_TYPES),
        "training",
    )
    training_instance_count: int = _integer(
        1, 1, 16, "Training instances (full fine-tuning shards across all of their GPUs).", "training"
    )
    training_volume_gb: int = _integer(500, 50, 16384, "Training volume size per instance, in GB.", "training")
    method: str = _setting(
        "full",
        " or ".join(METHODS),
        "Full fine-tuning (sharded) or LoRA on all linear layers (merged on save).",
        _one_of(*METHODS),
        "training",
    )
    epochs: int = _integer(3, *EPOCHS_RANGE, "Training epochs.", "training")
    learning_rate: float = _setting(
        2e-5,
        "a number greater than 0 and at most 0.01",
        "Peak learning rate.",
        lambda v: 0 < v <= 0.01,
        "training",
    )
    block_size: int = _integer(1024, 64, 2048, "Tokens per training sequence (GPT-J's context is 2048).", "training")
    per_device_train_batch_size: int = _integer(4, 1, 64, "Sequences per GPU per step.", "training")
    gradient_accumulation_steps: int = _integer(1, 1, 1024, "Micro-batches accumulated per optimizer step.", "training")
    use_spot: bool = _flag(False, "Managed spot training (checkpoints to S3, resumed after interruptions).", "training")
    max_run_seconds: int = _integer(
        36000, 600, 2_419_200, "Stopping condition: longest training run, in seconds.", "training"
    )
    max_wait_seconds: int = _integer(
        72000,
        600,
        2_419_200,
        "With spot: longest wait for capacity plus run time, in seconds.",
        "training",
        also=", at least max_run_seconds",
    )
    tuning_enabled: bool = _flag(
        False, "Run a hyperparameter tuning job over the learning rate instead of one training job.", "training"
    )
    tuning_max_jobs: int = _integer(2, 1, 100, "Tuning: training jobs in total.", "training")
    tuning_parallel_jobs: int = _integer(
        1, 1, 10, "Tuning: training jobs at once.", "training", also=", at most tuning_max_jobs"
    )
    tuning_learning_rate_min: float = _setting(
        1e-5,
        "a number greater than 0, below tuning_learning_rate_max",
        "Tuning: lowest learning rate.",
        lambda v: 0 < v <= 0.01,
        "training",
    )
    tuning_learning_rate_max: float = _setting(
        1e-4,
        "a number at most 0.01, above tuning_learning_rate_min",
        "Tuning: highest learning rate.",
        lambda v: 0 < v <= 0.01,
        "training",
    )
    # Serving
    deploy_base_endpoint: bool = _flag(
        False, "Deploy the base GPT-J-6B endpoint (bills by the hour while it exists).", "serving"
    )
    fine_tuned_job: str = _setting(
        "",
        "a SageMaker training job name, or empty for none",
        "Deploy the model this training job produced (bills by the hour while it exists).",
        _matches(r"|[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
        "serving",
    )
    endpoint_instance_type: str = _setting(
        "ml.g5.12xlarge",
        f"one of {_HOSTING_TYPES}",
        # Accepted here, refused by the synth of an endpoint (stacks/constructs/serving_container.py): the table lists
        # the types, the serving image decides which it runs on; config/ does not import the stacks.
        "Endpoint instance type, for both endpoints. Synth refuses a type whose GPUs the serving image's vLLM has no "
        "kernels for (Turing: ml.g4dn) or cannot hold GPT-J-6B (docs/serving.md).",
        _one_of(*HOSTING_INSTANCE_TYPES),
        "serving",
    )
    endpoint_min_capacity: int = _integer(
        1, 1, 10, "Autoscaling: fewest instances.", "serving", also=", at most endpoint_max_capacity"
    )
    endpoint_max_capacity: int = _integer(
        2, 1, 10, "Autoscaling: most instances.", "serving", also=", at least endpoint_min_capacity"
    )
    endpoint_target_invocations: int = _integer(
        10, 1, 10_000, "Autoscaling target: invocations per instance per minute.", "serving"
    )
    endpoint_scale_in_cooldown_seconds: int = _integer(
        900, 0, 3600, "Autoscaling: wait after a scale-in, in seconds.", "serving"
    )
    endpoint_scale_out_cooldown_seconds: int = _integer(
        300, 0, 3600, "Autoscaling: wait after a scale-out, in seconds.", "serving"
    )
    idle_alarm_hours: int = _integer(
        6, 1, 24, "Alarm when an endpoint has had no invocations for this many hours.", "serving"
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not f.metadata["check"](value):
                raise SettingError(f.name, value, f.metadata["allowed"])
        pairs = [
            (self.max_wait_seconds >= self.max_run_seconds, "max_wait_seconds"),
            (self.tuning_parallel_jobs <= self.tuning_max_jobs, "tuning_parallel_jobs"),
            (self.tuning_learning_rate_min < self.tuning_learning_rate_max, "tuning_learning_rate_min"),
            (self.endpoint_min_capacity <= self.endpoint_max_capacity, "endpoint_min_capacity"),
        ]
        for holds, key in pairs:
            if not holds:
                raise SettingError(key, getattr(self, key), _FIELDS[key].metadata["allowed"])

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoints these settings deploy, in the order the commands show them: "base", "fine-tuned"."""
        switches = (("base", self.deploy_base_endpoint), ("fine-tuned", bool(self.fine_tuned_job)))
        return tuple(name for name, on in switches if on)

    @property
    def endpoints_requested(self) -> bool:
        return bool(self.endpoints)

    @property
    def training_volume_key(self) -> bool:
        """Whether training volumes get the bucket's KMS key: only on EBS-only types, since SageMaker rejects a volume
        key on types with local NVMe instance storage (p3dn, g5, p4d, p5, ...), which the hardware encrypts."""
        return not TRAINING_INSTANCE_TYPES[self.training_instance_type].local_nvme


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def is_cdk_key(key: str) -> bool:
    """Context keys owned by the CDK itself (feature flags, CLI internals) rather than by this app."""
    return key.startswith("@") or ":" in key or "/" in key


def known_setting(key: str) -> bool:
    return key in _FIELDS


def _coerce(key: str, raw: object, kind: type) -> object:
    allowed = _FIELDS[key].metadata["allowed"]
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"true", "false"}:
            return raw.lower() == "true"
    elif kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
    elif kind is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
    elif isinstance(raw, str):
        return raw.strip()
    raise SettingError(key, raw, allowed)


_KINDS: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}


def coerce_setting(key: str, raw: object) -> object:
    """A known setting's value as `Settings` holds it (a file's JSON value or a `-c` string alike)."""
    return _coerce(key, raw, _KINDS[str(_FIELDS[key].type)])


def load_settings(context: Mapping[str, object]) -> Settings:
    """Build `Settings` from settings values (a file's JSON values and `-c` strings alike); CDK-owned context keys
    are skipped, unknown keys are errors."""
    values: dict[str, object] = {}
    for key, raw in sorted(context.items()):
        if is_cdk_key(key):
            continue
        if key not in _FIELDS:
            raise SettingError(key, raw, "", unknown=True)
        values[key] = coerce_setting(key, raw)
    return Settings(**values)  # type: ignore[arg-type]


def settings_table() -> list[dict[str, str]]:
    """Rows for the README: key, default, allowed values, meaning."""
    return [
        {
            "key": f.name,
            # A default that fails its own check (the region) must be set in every settings file.
            "default": _format_default(f.default) if f.metadata["check"](f.default) else "(required)",
            "allowed": f.metadata["allowed"],
            "meaning": f.metadata["meaning"],
            "group": f.metadata["group"],
        }
        for f in dataclasses.fields(Settings)
    ]


def _format_default(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return "(empty)"
    return str(value)
