"""`make cost`: the estimate follows the settings, the price table and BENCHMARKS.md's measured throughput."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_settings
from ops import cost

PRICES = {
    "source": "test prices",
    "date": "2026-01-01",
    "spot_savings_assumed": 0.5,
    "spot_savings_source": "test",
    "hours_per_month": 730,
    "training_per_hour": {"ml.p3dn.24xlarge": 36.0},
    "hosting_per_hour": {"ml.g5.12xlarge": 7.0},
}
P3DN_FULL = cost.Throughput("ml.p3dn.24xlarge", "full", 2800.0, "reference")


def settings(**overrides: object) -> object:
    return load_settings({"region": "us-east-1", **overrides})


def test_reads_the_throughput_table_from_benchmarks() -> None:
    rows = cost.measured_throughputs()
    assert ("ml.p3dn.24xlarge", "full") in {(r.instance_type, r.method) for r in rows}


def test_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "BENCHMARKS.md"
    empty.write_text("# nothing\n")
    with pytest.raises(SystemExit, match="no throughput table"):
        cost.measured_throughputs(empty)


def test_training_time_and_cost_follow_tokens_and_price() -> None:
    lines = cost.report(settings(doc_count=693, epochs=3), PRICES, [P3DN_FULL])  # type: ignore[arg-type]
    text = "\n".join(lines)
    tokens = 693 * cost.WORDS_PER_DOCUMENT * cost.TOKENS_PER_WORD * 3
    hours = tokens / 2800 / 3600
    assert f"~{hours:.1f} h" in text
    assert f"on demand: ${hours * 36:,.0f}" in text
    assert f"with spot: ${hours * 36 * 0.5:,.0f}" in text


def test_a_newer_row_for_the_same_type_and_method_replaces_the_older(tmp_path: Path) -> None:
    table = tmp_path / "BENCHMARKS.md"
    table.write_text(
        "<!-- throughput-table:start -->\n| instance type | method | tokens/s | source |\n| --- | --- | --- | --- |\n"
        "| `ml.p3dn.24xlarge` | full | 2,800 | the original notebook's measured run |\n"
        "| `ml.p3dn.24xlarge` | full | 9,000 | derived, not measured on this type: ... |\n"
        "<!-- throughput-table:end -->\n"
    )
    lines = cost.report(settings(), PRICES, cost.measured_throughputs(table))  # type: ignore[arg-type]
    assert "  throughput 9,000 tokens/s per instance (derived, not measured on this type: ...)" in lines


def test_fewer_documents_cost_proportionally_less() -> None:
    full = cost.training_tokens(settings(doc_count=693))  # type: ignore[arg-type]
    part = cost.training_tokens(settings(doc_count=250))  # type: ignore[arg-type]
    assert part == pytest.approx(full * 250 / 693)


def test_unmeasured_method_gives_no_made_up_number() -> None:
    text = "\n".join(cost.report(settings(method="lora"), PRICES, [P3DN_FULL]))  # type: ignore[arg-type]
    assert "no measured throughput for lora on ml.p3dn.24xlarge" in text
    assert "on demand" not in text


def test_endpoints_hourly_and_monthly_at_min_and_max() -> None:
    chosen = settings(deploy_base_endpoint=True, endpoint_min_capacity=1, endpoint_max_capacity=3)
    text = "\n".join(cost.report(chosen, PRICES, [P3DN_FULL]))  # type: ignore[arg-type]
    assert (
        "Endpoint base (ml.g5.12xlarge): $7.00/h ($5,110/month) at 1 instance(s), $21.00/h ($15,330/month) at 3" in text
    )


def test_no_endpoint_costs_nothing_per_hour() -> None:
    text = "\n".join(cost.report(settings(), PRICES, [P3DN_FULL]))  # type: ignore[arg-type]
    assert "Endpoints: none configured" in text


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["-c", "doc_count=250"]) == 0
    assert "250 documents x 3 epochs" in capsys.readouterr().out
    assert cost.main(["-c", "doc_count=0"]) == 1
    assert capsys.readouterr().err.strip() == "error: invalid setting doc_count=0: expected an integer from 1 to 693"
