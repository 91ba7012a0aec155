"""Argument parsing: SageMaker's `--key value` hyperparameters, environment defaults, clear errors."""

import pytest
from arguments import MODEL_ID, MODEL_REVISION, DataArguments, FinetuneArguments, ModelArguments, parse_args


def test_defaults_come_from_the_sagemaker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_CHANNEL_TRAIN", "/data/train")
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", "/data/validation")
    monkeypatch.setenv("SM_MODEL_DIR", "/out/model")
    monkeypatch.delenv("SM_CHANNEL_MODEL", raising=False)
    model_args, data_args, args = parse_args([])
    assert (model_args.model_name_or_path, model_args.model_revision) == (MODEL_ID, MODEL_REVISION)
    assert len(MODEL_REVISION) == 40 and int(MODEL_REVISION, 16) >= 0
    assert (data_args.train_dir, data_args.validation_dir, args.model_dir) == (
        "/data/train",
        "/data/validation",
        "/out/model",
    )
    assert (data_args.block_size, args.method, args.precision, args.gradient_checkpointing) == (
        1024,
        "full",
        "auto",
        True,
    )
    assert model_args.attn_implementation == "sdpa"
    assert args.checkpoint_dir == "/opt/ml/checkpoints"


def test_a_model_channel_replaces_the_hub_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_CHANNEL_MODEL", "/opt/ml/input/data/model")
    assert parse_args([])[0].model_name_or_path == "/opt/ml/input/data/model"
    assert parse_args(["--model_name_or_path", "/local"])[0].model_name_or_path == "/local"


def test_hyperparameters_as_sagemaker_passes_them() -> None:
    argv = (
        "--method lora --epochs 3 --learning_rate 1e-4 --per_device_train_batch_size 4 --gradient_checkpointing False"
    )
    argv += " --lora_r 8 --lora_alpha 16 --precision fp16 --max_steps -1 --block_size 2048"
    _, data_args, args = parse_args(argv.split())
    assert (args.method, args.epochs, args.learning_rate, args.gradient_checkpointing) == ("lora", 3.0, 1e-4, False)
    assert (args.lora_r, args.lora_alpha, args.precision, args.max_steps) == (8, 16, "fp16", -1)
    assert data_args.block_size == 2048


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "prefix"], "argument --method: invalid choice"),
        (["--precision", "int8"], "argument --precision: invalid choice"),
        (["--epochs", "three"], "argument --epochs: invalid float value"),
        (["--block_size", "1"], "--block_size: expected an integer >= 2"),
        (["--epochs", "0"], "--epochs: expected a number > 0, got 0.0"),
        (["--max_steps", "0"], "--max_steps: expected -1 or an integer > 0, got 0"),
        (["--learning_rate", "0"], "--learning_rate: expected a number in (0, 1)"),
        (["--warmup_ratio", "1"], "--warmup_ratio: expected a number in [0, 1)"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size: expected an integer >= 1"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps: expected an integer >= 1"),
        (["--lora_dropout", "1.5"], "--lora_dropout: expected a number in [0, 1)"),
        (["--keep_checkpoints", "0"], "--keep_checkpoints: expected an integer >= 1"),
        (["--checkpoint_every_steps", "-5"], "--checkpoint_every_steps: expected an integer >= 0"),
        (["--gradient_checkpointing", "maybe"], "Truthy value expected"),
        (["--lerning_rate", "1e-4"], "not used by the HfArgumentParser: ['--lerning_rate', '1e-4']"),
    ],
)
def test_bad_values_exit_with_a_message_naming_the_argument(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_dataclasses_check_values_when_built_directly() -> None:
    with pytest.raises(ValueError, match="--attn_implementation: expected sdpa or eager"):
        ModelArguments(attn_implementation="flash")
    with pytest.raises(ValueError, match="--block_size"):
        DataArguments(block_size=0)
    with pytest.raises(ValueError, match="--method: expected full or lora"):
        FinetuneArguments(method="qlora")


def test_sagemakers_own_tuning_hyperparameter_is_ignored() -> None:
    argv = ["--_tuning_objective_metric", "eval:loss", "--epochs", "2", "--_tuning_objective_metric=eval:loss"]
    assert parse_args(argv)[2].epochs == 2.0
