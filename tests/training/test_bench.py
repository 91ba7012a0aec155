"""The GPU benchmark's code paths on a tiny config on the CPU (docs/training.md has the GPU command)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import GPTJConfig

from tests.training.conftest import TRAINING

# By path: the repository's top-level bench/ package (other benchmarks) shadows a plain `import bench`.
_spec = importlib.util.spec_from_file_location("training_bench", TRAINING / "bench.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


# 12 tiny training runs, ~34 s on the CI machine: `make test-e2e` and `make test-container` run it, `make test` not.
@pytest.mark.e2e
def test_tiny_benchmark_runs_every_configuration_and_writes_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main(["--tiny", "--steps", "2", "--warmup", "1", "--no_compile", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "bench.json").read_text())["results"]
    configurations = [(r["seq"], r["precision"], r["method"], r["impl"]) for r in results]
    runs = [(m, i) for m in ("full", "lora") for i in ("baseline", "ours")]
    # bf16 at the target sequence first, then fp16 (loss scaling, the V100 path) at the default job's, then bf16.
    assert configurations == [
        (seq, precision, *run) for seq, precision in [(64, "bf16"), (32, "fp16"), (32, "bf16")] for run in runs
    ]
    assert all(r["error"] is None and r["tokens_per_second"] > 0 for r in results)
    assert [r["loss_scaling"] for r in results] == [r["precision"] == "fp16" for r in results]  # the scaler's own
    assert all(r["vs_baseline"] > 0 for r in results if r["impl"] == "ours")
    assert {r["checkpoint_every"] for r in results if r["impl"] == "baseline"} == {1}
    assert {r["checkpoint_every"] for r in results if r["impl"] == "ours"} == {0}
    table = (tmp_path / "bench.md").read_text()
    assert "| 64 | bf16 | lora | ours | 2 x 2 | none | no | default |" in table
    assert "| 32 | fp16 + loss scaling | full | baseline | 4 x 2 | all | no | default |" in table
    assert "ours, sequence 32, fp16: LoRA / full tokens/s" in table
    assert (
        "train.py flags of ours, full, sequence 32, fp16: --method full --block_size 32 --precision fp16 "
        "--gradient_checkpointing False" in table
    )
    assert table in capsys.readouterr().out


def test_the_fp16_runs_step_with_train_pys_numerics_for_one_v100() -> None:
    """fp32 master weights under fp16 autocast (full), the fp16 base under autocast (ours' LoRA), loss scaling by
    numerics.py's scaler; bf16 keeps the reference's bf16 weights."""
    cpu = torch.device("cpu")
    expected = {
        ("full", "baseline", "fp16"): (torch.float32, torch.float16),
        ("full", "ours", "fp16"): (torch.float32, torch.float16),
        ("lora", "baseline", "fp16"): (torch.float16, None),  # stock peft casts its inputs itself
        ("lora", "ours", "fp16"): (torch.float16, torch.float16),
        ("full", "ours", "bf16"): (torch.bfloat16, None),
        ("lora", "ours", "bf16"): (torch.bfloat16, torch.bfloat16),
    }
    for (method, impl, precision), numerics in expected.items():
        result = bench.Result(32, method, impl, 4, 2, 1, False, "default", precision)
        chosen = bench.step_numerics(result, cpu)
        assert (chosen.load_dtype, chosen.autocast_dtype) == numerics


def test_a_gpu_without_bf16_records_the_bf16_runs_as_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100
    monkeypatch.setattr(bench, "build_model", lambda *args: pytest.fail("built a bf16 model on a V100"))
    monkeypatch.setattr(bench.gc, "collect", lambda: 0)  # nothing was allocated
    result = bench.Result(32, "full", "baseline", 4, 2, 1, False, "default", "bf16")
    bench.run_guarded(None, result, bench.parse_args(["--tiny"]), torch.device("cuda"))
    assert (
        result.error == "ValueError: --precision: bf16 needs compute capability >= 8.0, this GPU has (7, 0); use fp16"
    )


def test_the_v100_peak_is_its_fp16_tensor_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-32GB")
    assert bench.peak_flops(torch.device("cuda"), None) == 125e12


def test_mfu_counts_6n_for_full_and_4n_plus_6_adapters_for_lora() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(10, 5), torch.nn.Linear(10, 5))
    assert bench.flops_per_token(model, "full") == 6 * 110
    model[1].weight.requires_grad_(False)
    model[1].bias.requires_grad_(False)
    assert bench.flops_per_token(model, "lora") == 4 * 55 + 6 * 55


def test_ours_steps_back_after_running_out_of_memory_or_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_one(config: object, result: "bench.Result", args: object, device: torch.device) -> None:
        if result.checkpoint_every == 0:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        if result.attention == "cudnn first":
            raise RuntimeError("cuDNN Frontend error: no valid engine\n(details)")
        result.tokens_per_second = 1000.0

    monkeypatch.setattr(bench, "run_one", run_one)
    monkeypatch.setattr(torch._dynamo, "reset", lambda: None)  # nothing was compiled
    monkeypatch.setattr(bench.gc, "collect", lambda: 0)  # nor allocated
    args = bench.parse_args(["--tiny"])
    attempts = bench.run_configuration(None, 32, "full", "ours", args, torch.device("cuda"))
    assert [(r.checkpoint_every, r.attention, r.error) for r in attempts] == [
        (0, "cudnn first", "out of memory"),
        (4, "cudnn first", "RuntimeError: cuDNN Frontend error: no valid engine"),
        (4, "default", None),
    ]
    baseline = bench.run_configuration(None, 32, "full", "baseline", args, torch.device("cuda"))
    assert [(r.checkpoint_every, r.attention, r.compiled) for r in baseline] == [(1, "default", False)]


def test_the_gptj_6b_shape_has_6_05e9_weights_and_33m_lora_adapters() -> None:
    """The real architecture, built on the meta device (no memory): the N behind the MFU the GPU run reports."""
    config = GPTJConfig(**bench.GPTJ_6B)
    meta = torch.device("meta")
    full_run = bench.Result(2048, "full", "baseline", 4, 2, 1, False, "default")
    full = bench.build_model(config, full_run, torch.bfloat16, 16, meta)
    assert bench.flops_per_token(full, "full") == 6 * 6_050_882_784
    lora_run = bench.Result(2048, "lora", "ours", 4, 2, 0, True, "cudnn first")
    lora = bench.build_model(config, lora_run, torch.bfloat16, 16, meta)
    adapters = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    # r (in + out) per adapted linear layer: q, k, v, out 4096 -> 4096; fc_in 4096 -> 16384; fc_out 16384 -> 4096.
    assert adapters == 28 * 16 * (4 * (4096 + 4096) + 2 * (4096 + 16384)) == 33_030_144
    assert bench.flops_per_token(lora, "lora") == 4 * 6_050_882_784 + 6 * adapters


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            bench.Result(2048, "full", "ours", 4, 2, 4, True, "cudnn first"),
            (2048, "full", True, 4, True, True, "bf16"),
        ),
        (
            bench.Result(1024, "lora", "ours", 8, 2, 0, False, "default", "fp16"),
            (1024, "lora", False, 1, False, False, "fp16"),
        ),
    ],
)
def test_the_reported_flags_run_the_same_configuration_in_train_py(
    result: "bench.Result", expected: tuple[object, ...]
) -> None:
    from arguments import parse_args

    _, data_args, args = parse_args(bench.train_flags(result).split())
    settings = (data_args.block_size, args.method, args.gradient_checkpointing, args.gradient_checkpointing_every)
    assert (*settings, args.compile_blocks, args.cudnn_attention_first, args.precision) == expected
