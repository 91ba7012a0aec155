"""The GPU benchmark's code paths on a tiny config on the CPU (docs/training.md has the GPU command)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

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
    assert table in capsys.readouterr().out


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
