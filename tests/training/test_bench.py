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


def test_tiny_benchmark_runs_every_configuration_and_writes_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main(["--tiny", "--steps", "2", "--warmup", "1", "--no_compile", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "bench.json").read_text())["results"]
    configurations = {(r["seq"], r["method"], r["impl"]) for r in results}
    assert configurations == {(s, m, i) for s in (32, 64) for m in ("full", "lora") for i in ("baseline", "ours")}
    assert all(r["error"] is None and r["tokens_per_second"] > 0 for r in results)
    assert all(r["vs_baseline"] > 0 for r in results if r["impl"] == "ours")
    assert {r["checkpoint_every"] for r in results if r["impl"] == "baseline"} == {1}
    assert {r["checkpoint_every"] for r in results if r["impl"] == "ours"} == {0}
    table = (tmp_path / "bench.md").read_text()
    assert "| 64 | lora | ours | 2 x 2 | none | no | default |" in table
    assert "LoRA / full tokens/s" in table
    assert (
        "train.py flags of ours, full, sequence 64: --method full --block_size 64 --gradient_checkpointing False"
        in table
    )
    assert table in capsys.readouterr().out
    # make bench-estimate reads the same file: every field it needs is written, and a CPU run is refused by name.
    from ops.bench_estimate import BenchRun, load_bench

    assert set(BenchRun.__dataclass_fields__) <= set(results[0])
    with pytest.raises(ValueError, match="no finished GPU run with MFU and peak memory \\(device 'cpu'\\)"):
        load_bench(tmp_path / "bench.json")


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
    full = bench.build_model(config, bench.Result(2048, "full", "baseline", 4, 2, 1, False, "default"), 16, meta)
    assert bench.flops_per_token(full, "full") == 6 * 6_050_882_784
    lora = bench.build_model(config, bench.Result(2048, "lora", "ours", 4, 2, 0, True, "cudnn first"), 16, meta)
    adapters = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    # r (in + out) per adapted linear layer: q, k, v, out 4096 -> 4096; fc_in 4096 -> 16384; fc_out 16384 -> 4096.
    assert adapters == 28 * 16 * (4 * (4096 + 4096) + 2 * (4096 + 16384)) == 33_030_144
    assert bench.flops_per_token(lora, "lora") == 4 * 6_050_882_784 + 6 * adapters


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (bench.Result(2048, "full", "ours", 4, 2, 4, True, "cudnn first"), (2048, "full", True, 4, True, True)),
        (bench.Result(1024, "lora", "ours", 8, 2, 0, False, "default"), (1024, "lora", False, 1, False, False)),
    ],
)
def test_the_reported_flags_run_the_same_configuration_in_train_py(
    result: "bench.Result", expected: tuple[object, ...]
) -> None:
    from arguments import parse_args

    _, data_args, args = parse_args(bench.train_flags(result).split())
    settings = (data_args.block_size, args.method, args.gradient_checkpointing, args.gradient_checkpointing_every)
    assert (*settings, args.compile_blocks, args.cudnn_attention_first) == expected
