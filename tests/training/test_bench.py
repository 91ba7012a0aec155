"""The GPU benchmark's code paths on a tiny config on the CPU (docs/training.md has the GPU command)."""

import json

import pytest

from tests.training.conftest import Launched

pytestmark = pytest.mark.slow


def test_tiny_benchmark_runs_every_configuration_and_writes_its_report(launches: dict[str, Launched]) -> None:
    run = launches["bench"].result()
    assert run.returncode == 0, run.output
    report = json.loads((run.root / "bench.json").read_text())
    results = report["results"]
    configurations = {(r["seq"], r["method"], r["impl"]) for r in results}
    assert configurations == {(s, m, i) for s in (32, 64) for m in ("full", "lora") for i in ("baseline", "ours")}
    assert all(r["error"] is None and r["tokens_per_second"] > 0 for r in results)
    assert all(r["vs_baseline"] > 0 for r in results if r["impl"] == "ours")
    assert {r["checkpoint_every"] for r in results if r["impl"] == "baseline"} == {1}
    assert {r["checkpoint_every"] for r in results if r["impl"] == "ours"} == {0}
    table = (run.root / "bench.md").read_text()
    assert "| 64 | lora | ours | 2 x 2 | none | no |" in table
    assert "LoRA / full tokens/s" in table
