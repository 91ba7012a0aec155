"""`make bench-estimate`: from training/bench.py's bench.json to time, memory and cost on the training instance."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from config import load_settings
from config.instance_types import TRAINING_INSTANCE_TYPES
from ops import bench_estimate
from ops.bench_estimate import GIB, load_bench, report

N = 6_050_882_784  # GPT-J-6B (tests/training/test_bench.py counts it on the meta device)
PRICES = {"training_per_hour": {"ml.p3dn.24xlarge": 36.0}}


def bench_result(impl: str, checkpoint_every: int, mfu: float | None, peak_gib: float | None, **extra: Any) -> dict:
    """A bench.json result as training/bench.py writes it (the numbers are inputs of these tests, not measurements)."""
    return {
        **{"seq": 1024, "method": "full", "impl": impl, "micro_batch": 8, "accumulation": 2},
        **{"checkpoint_every": checkpoint_every, "compiled": impl == "ours", "attention": "default"},
        **{"warmup_seconds": 1.0, "tokens_per_second": 10_000.0, "parameters": N, "trainable_parameters": N},
        **{"flops_per_token": 6.0 * N, "mfu": mfu, "peak_memory_gib": peak_gib, "error": None, "vs_baseline": None},
        **extra,
    }


def write_bench(tmp_path: Path, *results: dict, device: str = "NVIDIA H100 80GB HBM3") -> Path:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"device": device, "torch": "2.6.0", "args": {}, "results": list(results)}))
    return path


def settings(**overrides: object) -> Any:
    return load_settings({"region": "us-east-1", **overrides})


def test_mfu_carries_over_to_the_eight_v100s_and_the_state_is_sharded(tmp_path: Path) -> None:
    state = 8 * N / GIB  # bf16 weights, gradients and two Adam states: what the benchmark held besides activations
    path = write_bench(
        tmp_path,
        bench_result("baseline", 1, 0.40, state + 8 * 0.5),  # 0.5 GiB of activations a sequence
        bench_result("ours", 0, None, None, error="out of memory"),
        bench_result("ours", 4, 0.50, state + 8 * 3.0),
    )
    lines = report(load_bench(path), settings(), PRICES)
    text = "\n".join(lines)
    default_tps = 0.40 * 8 * 125e12 / (6 * N)
    tokens = 693 * 10_015_333 / 693 * 1.3 * 3
    hours = tokens / default_tps / 3600
    assert f"-> ~{default_tps:,.0f} tokens/s per instance, ~{hours:.1f} h, ${hours * 36:,.0f} on demand" in text
    # fp32 weights, gradients and Adam states sharded over 8 GPUs, plus 4 sequences (per-device batch) of activations
    assert f"~{16 * N / 8 / GIB + 4 * 0.5:.1f} GiB per GPU (fits in 32)" in text
    assert f"~{16 * N / 8 / GIB + 4 * 3.0:.1f} GiB per GPU (fits in 32)" in text
    assert "checkpointing 1 block in 4, compiled blocks" in text  # ours' last attempt, not the failed one
    assert "original notebook: 2,800 tokens/s measured -> ~3.9 h" in text
    row = lines[
        lines.index("Row to append to BENCHMARKS.md's throughput table (make cost uses the last row of a type):") + 1
    ]
    assert row.startswith(f"| `ml.p3dn.24xlarge` | full | {default_tps:,.0f} | derived, not measured on this type")


def test_the_v100s_are_estimated_from_the_fp16_runs_and_an_a100_from_the_bf16_ones(tmp_path: Path) -> None:
    """ml.p3dn.24xlarge trains in fp16 with loss scaling: its estimate comes from the benchmark's fp16 runs, whose
    full fine-tuning held fp32 weights, gradients and Adam states (16 bytes a parameter) besides activations."""
    fp16_state = 16 * N / GIB
    path = write_bench(
        tmp_path,
        bench_result("baseline", 1, 0.40, 8 * N / GIB + 8 * 0.5),
        bench_result("ours", 0, 0.50, 8 * N / GIB + 8 * 3.0),
        bench_result("baseline", 1, 0.30, fp16_state + 8 * 0.5, precision="fp16"),
        bench_result("ours", 0, 0.35, fp16_state + 8 * 3.0, precision="fp16"),
    )
    text = "\n".join(report(load_bench(path), settings(), PRICES))
    assert "the instance's GPUs train in fp16" in text and "stands in" not in text
    assert "train.py's default (fp16 with loss scaling, checkpointing every block" in text
    assert f"-> ~{0.30 * 8 * 125e12 / (6 * N):,.0f} tokens/s per instance" in text
    assert f"~{16 * N / 8 / GIB + 4 * 0.5:.1f} GiB per GPU (fits in 32)" in text  # the same 0.5 GiB a sequence
    assert "(fp16 runs: one GPU's numerics, fp32 master weights under fp16 autocast, not the FSDP2 job's" in text
    a100 = "\n".join(report(load_bench(path), settings(training_instance_type="ml.p4d.24xlarge"), PRICES))
    assert "the instance's GPUs train in bf16" in a100 and "fp16 runs:" not in a100
    assert f"-> ~{0.40 * 8 * 312e12 / (6 * N):,.0f} tokens/s per instance" in a100


def test_without_fp16_runs_the_v100_estimate_says_bf16_stands_in(tmp_path: Path) -> None:
    path = write_bench(tmp_path, bench_result("baseline", 1, 0.4, 60), bench_result("ours", 0, 0.5, 70))
    text = "\n".join(report(load_bench(path), settings(), PRICES))
    assert "(no finished fp16 run of train.py's default: its bf16 run stands in)" in text
    assert "(no finished fp16 run of train.py's speed options: its bf16 run stands in)" in text


def test_a_configuration_that_does_not_fit_the_gpus_gives_no_row(tmp_path: Path) -> None:
    state = 8 * N / GIB
    too_much = state + 8 * 6.0  # 6 GiB of activations a sequence: 4 of them and the sharded state exceed 32 GiB
    path = write_bench(tmp_path, bench_result("baseline", 1, 0.4, too_much), bench_result("ours", 0, 0.5, too_much))
    text = "\n".join(report(load_bench(path), settings(), PRICES))
    assert text.count("does NOT fit in 32") == 2
    assert "train.py's default does not fit the 32 GiB GPUs: no row for the table." in text


def test_lora_keeps_the_16_bit_base_on_every_gpu(tmp_path: Path) -> None:
    adapters = 33_030_144
    lora = {"method": "lora", "trainable_parameters": adapters, "flops_per_token": 4.0 * N + 6.0 * adapters}
    held = (2 * (N - adapters) + 16 * adapters) / GIB
    path = write_bench(
        tmp_path,
        bench_result("baseline", 1, 0.3, held + 8 * 0.25, **lora),
        bench_result("ours", 0, 0.4, held + 8 * 1.0, **lora),
    )
    text = "\n".join(report(load_bench(path), settings(method="lora", learning_rate="1e-4"), PRICES))
    assert "stock peft, the closest to train.py's default (bf16, checkpointing every block" in text
    assert f"~{held + 4 * 0.25:.1f} GiB per GPU (fits in 32)" in text
    assert f"-> ~{0.3 * 8 * 125e12 / (4.0 * N + 6.0 * adapters):,.0f} tokens/s per instance" in text


def test_bench_py_writes_every_field_this_reads_and_a_cpu_run_is_refused_by_name(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("training_bench", Path("training/bench.py").resolve())
    assert spec and spec.loader
    sys.path.insert(0, str(Path("training").resolve()))  # bench.py imports train.py's modules, as on SageMaker
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(
        [
            "--tiny",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--no_compile",
            "--methods",
            "full",
            "--impls",
            "baseline",
            "--seq_lengths",
            "32",
            "--out",
            str(tmp_path),
        ]
    )
    results = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert [r["precision"] for r in results] == ["bf16", "fp16"]
    assert all(set(bench_estimate.BenchRun.__dataclass_fields__) <= set(result) for result in results)
    with pytest.raises(ValueError, match="no finished GPU run with MFU and peak memory \\(device 'cpu'\\)"):
        load_bench(tmp_path / "bench.json")


def test_a_cpu_run_has_nothing_to_carry_over(tmp_path: Path) -> None:
    path = write_bench(tmp_path, bench_result("baseline", 1, None, None), device="cpu")
    with pytest.raises(ValueError, match="no finished GPU run with MFU and peak memory \\(device 'cpu'\\)"):
        load_bench(path)


def test_the_block_size_must_have_been_benchmarked(tmp_path: Path) -> None:
    path = write_bench(tmp_path, bench_result("baseline", 1, 0.4, 50), bench_result("ours", 0, 0.5, 60))
    with pytest.raises(ValueError, match="no finished baseline run of full at sequence 2048"):
        report(load_bench(path), settings(block_size=2048), PRICES)


def test_an_instance_type_without_a_known_peak_is_named(tmp_path: Path) -> None:
    path = write_bench(tmp_path, bench_result("baseline", 1, 0.4, 50), bench_result("ours", 0, 0.5, 60))
    with pytest.raises(ValueError, match=re.escape("training_instance_type ml.g5.12xlarge: no peak FLOP/s")):
        report(load_bench(path), settings(training_instance_type="ml.g5.12xlarge", method="lora"), PRICES)


def test_each_estimable_instance_types_gpu_is_its_architectures_and_has_a_peak() -> None:
    """GPU_NAMES names the GPU whose peak (training/gpu_peaks.py) an estimate uses: a V100 for the Volta types, which
    train in fp16 (no bf16), an A100, H100 or H200 for the others."""
    architecture = {"V100": "volta", "A100": "ampere", "H100": "hopper", "H200": "hopper"}
    for instance, gpu in bench_estimate.GPU_NAMES.items():
        (model,) = [name for name in architecture if name in gpu]
        assert TRAINING_INSTANCE_TYPES[instance].gpu_arch == architecture[model], instance
        assert bench_estimate.peak_tflops_per_gpu(instance) > 0


def test_the_command_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_estimate.main([str(tmp_path / "missing.json")]) == 1
    assert f"error: {tmp_path / 'missing.json'}: expected the bench.json that training/bench.py writes" in (
        capsys.readouterr().err
    )
