"""`make cost`: the estimate follows the settings, the dated per-region price table and BENCHMARKS.md's throughput."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from config import HOSTING_INSTANCE_TYPES, TRAINING_INSTANCE_TYPES, SettingError, Settings, load_settings
from ops import cost
from stacks.constructs.serving_container import container_settings, suitable_instance_types

PRICES: dict[str, Any] = {
    "currency": "USD",
    "spot_savings_assumed": 0.5,
    "spot_savings_source": "test",
    "hours_per_month": 730,
    "sources": {"t": {"what": "test prices", "date": "2026-01-01"}},
    "regions": {
        "us-east-1": {
            "training": {"ml.p3dn.24xlarge": {"usd": 36.0, "source": "t"}},
            "hosting": {"ml.g5.12xlarge": {"usd": 7.0, "source": "t"}},
        }
    },
}
P3DN_FULL = cost.Throughput("ml.p3dn.24xlarge", "full", 2800.0, "reference")


def settings(**overrides: object) -> Settings:
    return load_settings({"region": "us-east-1", **overrides})


def hours_of(chosen: Settings, tokens_per_second: float = 2800) -> float:
    return cost.training_tokens(chosen) / tokens_per_second / 3600


def test_reads_the_throughput_table_from_benchmarks() -> None:
    rows = cost.measured_throughputs()
    assert ("ml.p3dn.24xlarge", "full") in {(r.instance_type, r.method) for r in rows}


def test_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "BENCHMARKS.md"
    empty.write_text("# nothing\n")
    with pytest.raises(SystemExit, match="no throughput table"):
        cost.measured_throughputs(empty)


def test_training_time_and_cost_follow_tokens_and_price() -> None:
    chosen = settings(doc_count=693, epochs=3)
    text = "\n".join(cost.report(chosen, PRICES, [P3DN_FULL]))
    hours = hours_of(chosen)
    assert f"~{hours:.1f} h per training job" in text
    assert f"on demand: ${hours * 36:,.0f}   with spot: ${hours * 36 * 0.5:,.0f}" in text
    assert "price $36.000 per instance-hour in us-east-1 (test prices, 2026-01-01)" in text


def test_a_newer_row_for_the_same_type_and_method_replaces_the_older(tmp_path: Path) -> None:
    table = tmp_path / "BENCHMARKS.md"
    table.write_text(
        "<!-- throughput-table:start -->\n| instance type | method | tokens/s | source |\n| --- | --- | --- | --- |\n"
        "| `ml.p3dn.24xlarge` | full | 2,800 | the original notebook's measured run |\n"
        "| `ml.p3dn.24xlarge` | full | 9,000 | a later run |\n"
        "<!-- throughput-table:end -->\n"
    )
    lines = cost.report(settings(), PRICES, cost.measured_throughputs(table))
    assert "  throughput 9,000 tokens/s per instance (measured: a later run)" in lines


def test_fewer_documents_cost_proportionally_less() -> None:
    full = cost.training_tokens(settings(doc_count=693))
    part = cost.training_tokens(settings(doc_count=250))
    assert part == pytest.approx(full * 250 / 693)


def test_tuning_prices_every_job_and_runs_them_in_rounds() -> None:
    one = settings()
    tuned = settings(tuning_enabled=True, tuning_max_jobs=5, tuning_parallel_jobs=2)
    one_job = hours_of(one) * 36
    text = "\n".join(cost.report(tuned, PRICES, [P3DN_FULL]))
    assert "at most 5 training jobs like this one, 2 at a time" in text
    assert f"~{3 * hours_of(one):.1f} h wall time for the tuning job (3 round(s) of ~{hours_of(one):.1f} h)" in text
    assert f"on demand: at most ${5 * one_job:,.0f} (5 jobs x ${one_job:,.0f})" in text
    assert cost.training_on_demand(tuned, PRICES, [P3DN_FULL]) == pytest.approx(5 * one_job)


def test_lora_is_derived_from_full_fine_tuning_and_says_so() -> None:
    factor = 8_486 / 11_095  # DESIGN.md §5, one H200: LoRA and full fine-tuning, otherwise the same run
    assert pytest.approx(factor) == cost.LORA_FACTOR
    chosen = settings(method="lora")
    text = "\n".join(cost.report(chosen, PRICES, [P3DN_FULL]))
    assert f"throughput {2800 * factor:,.0f} tokens/s per instance (derived: not measured: 2,800 tokens/s" in text
    assert f"on demand: ${hours_of(chosen, 2800 * factor) * 36:,.0f}" in text


def test_a_measured_lora_row_wins_over_the_derived_one() -> None:
    measured = cost.Throughput("ml.p3dn.24xlarge", "lora", 4000.0, "a GPU run")
    match = cost.throughput_for([P3DN_FULL, measured], "ml.p3dn.24xlarge", "lora")
    assert match == measured and not match.derived


def test_without_any_full_row_there_is_no_lora_estimate() -> None:
    text = "\n".join(cost.report(settings(method="lora", training_instance_type="ml.g5.12xlarge"), PRICES, []))
    assert "no measured throughput for lora on ml.g5.12xlarge" in text
    assert "on demand" not in text


def test_a_region_without_prices_is_one_line_and_no_number() -> None:
    chosen = settings(region="eu-west-1", deploy_base_endpoint=True)
    lines = cost.report(chosen, PRICES, [P3DN_FULL])
    no_price = [line for line in lines if "no SageMaker price is known for eu-west-1" in line]
    assert len(no_price) == 2  # training and endpoints, one line each
    assert not any("$" in line for line in lines if "Endpoint" in line or "on demand" in line)
    assert lines[0] == "Cost estimate for these settings in eu-west-1 (USD)"


def test_endpoints_hourly_and_monthly_at_min_and_max() -> None:
    chosen = settings(deploy_base_endpoint=True, endpoint_min_capacity=1, endpoint_max_capacity=3)
    text = "\n".join(cost.report(chosen, PRICES, [P3DN_FULL]))
    assert (
        "Endpoint base (ml.g5.12xlarge): $7.00/h ($5,110/month) at 1 instance(s), $21.00/h ($15,330/month) at 3" in text
    )
    assert cost.endpoint_hourly(chosen, PRICES) == 7.0


@pytest.mark.parametrize("instance_type", ["ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.g4dn.12xlarge"])
def test_an_endpoint_on_a_type_synth_refuses_says_so_and_is_not_priced(instance_type: str) -> None:
    """The committed table prices the g4dn types (the settings accept them), but synth refuses them (no kernels for
    the T4 in the serving image): an estimate says so, with synth's own line, instead of a price."""
    prices = cost.load_prices()
    assert cost.price_of(prices, "us-east-1", "hosting", instance_type) is not None, "priced, yet not estimated"
    chosen = settings(deploy_base_endpoint=True, fine_tuned_job="job-1", endpoint_instance_type=instance_type)
    lines = cost.endpoint_lines(chosen, prices)
    with pytest.raises(SettingError) as synth:  # what the serving stack raises for the type
        container_settings(instance_type)
    assert lines == [
        f"Endpoints: base, fine-tuned on {instance_type}",
        f"  refused at synth, so no cost estimate: {synth.value}",
    ]
    assert "CUDA kernels for sm_80 and newer only, none for Turing: ml.g4dn" in lines[1]
    assert "$" not in "".join(lines)
    assert cost.endpoint_hourly(chosen, prices) is None  # the review's headline: "unknown", not a price


def test_no_endpoint_costs_nothing_per_hour() -> None:
    text = "\n".join(cost.report(settings(), PRICES, [P3DN_FULL]))
    assert "Endpoints: none configured" in text
    assert cost.endpoint_hourly(settings(), PRICES) == 0.0


# --- the committed price table ---------------------------------------------------------------------------------


def test_every_price_has_a_dated_source_and_an_accepted_type() -> None:
    prices = cost.load_prices()
    for source in prices["sources"].values():
        assert source["what"] and re.fullmatch(r"\d{4}-\d{2}-\d{2}", source["date"])
    accepted = {"training": TRAINING_INSTANCE_TYPES, "hosting": HOSTING_INSTANCE_TYPES}
    for region, table in prices["regions"].items():
        assert load_settings({"region": region}).region == region
        for kind, entries in table.items():
            for name, entry in entries.items():
                assert name in accepted[kind], f"{region} {kind} {name}: not a type the settings accept"
                assert entry["source"] in prices["sources"] and entry["usd"] > 0


@pytest.mark.parametrize("instance_type", sorted(TRAINING_INSTANCE_TYPES))
def test_every_training_type_is_priced_or_says_it_is_not(instance_type: str) -> None:
    prices = cost.load_prices()
    chosen = settings(training_instance_type=instance_type)
    price = cost.price_of(prices, "us-east-1", "training", instance_type)
    lines = cost.training_lines(chosen, prices, cost.measured_throughputs())
    if price is None:
        assert f"  no price for {instance_type} in us-east-1 in prices.json: no cost estimate" in lines
    else:
        assert f"  price ${price.usd_per_hour:,.3f} per instance-hour in us-east-1 ({price.cite()})" in lines


@pytest.mark.parametrize("instance_type", sorted(HOSTING_INSTANCE_TYPES))
def test_every_hosting_type_is_priced_refused_or_says_it_is_not(instance_type: str) -> None:
    prices = cost.load_prices()
    chosen = settings(fine_tuned_job="job-1", endpoint_instance_type=instance_type)
    price = cost.price_of(prices, "us-east-1", "hosting", instance_type)
    lines = cost.endpoint_lines(chosen, prices)
    if instance_type not in suitable_instance_types():
        assert lines[1].startswith("  refused at synth, so no cost estimate: invalid setting endpoint_instance_type=")
    elif price is None:
        assert lines == [f"Endpoint fine-tuned: no price for {instance_type} in us-east-1 in prices.json"]
    else:
        assert lines[-1] == f"  price ${price.usd_per_hour:,.3f} per instance-hour in us-east-1 ({price.cite()})"


def test_bench_estimate_reads_one_regions_training_prices() -> None:
    flat = cost.flat_prices(PRICES, "us-east-1")
    assert flat == {"training_per_hour": {"ml.p3dn.24xlarge": 36.0}}
    assert cost.flat_prices(PRICES, "eu-west-1") == {"training_per_hour": {}}


# --- the command line ------------------------------------------------------------------------------------------


def test_command_line_estimates_the_committed_file(capsys: pytest.CaptureFixture[str]) -> None:
    committed = json.loads((cost.ROOT / "config" / "default.json").read_text())
    assert cost.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Cost estimate for config/default.json in {committed['region']} (USD)\n")
    assert f"{committed['doc_count']} documents x {committed['epochs']} epochs" in out


def test_command_line_trial_settings_from_c_and_dash_c(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--C", "doc_count=250 epochs=1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Cost estimate for config/default.json with doc_count=250 epochs=1 in ")
    assert "250 documents x 1 epochs" in out
    assert cost.main(["-c", "doc_count=0"]) == 1
    assert capsys.readouterr().err.strip() == "error: invalid setting doc_count=0: expected an integer from 1 to 693"


@pytest.mark.parametrize(
    ("c", "message"),
    [
        ("fine_tuned_job=my job", "error: C='fine_tuned_job=my job': 'job' is not key=value: a value cannot contain a"),
        ("doc_count 250", "error: C='doc_count 250': 'doc_count' is not key=value: expected key=value"),
        ("=5", "error: C='=5': '=5' is not key=value"),
        ("epochs=1 epochs=2", "error: C='epochs=1 epochs=2': epochs is given twice"),
    ],
)
def test_malformed_c_is_one_line_naming_the_word(c: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--C", c]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_an_unknown_environment_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--env", "prod"]) == 1
    assert capsys.readouterr().err == (
        "error: ENV=prod: no settings file config/prod.json (committed environments: default)\n"
    )
