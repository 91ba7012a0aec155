"""`make cost`: what the configured training run (or tuning job) and endpoints would cost, from the dated, sourced
price table in ops/prices.json (per region) and the training throughput measured in BENCHMARKS.md. Estimates, not
quotes: every price is printed with its source and date, and a number that is derived says how.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from config import SettingError, Settings
from ops.context import SETTINGS_ERRORS, add_arguments, selection_from
from ops.errors import run_command
from stacks.constructs.serving_container import container_settings

ROOT = Path(__file__).resolve().parents[1]
PRICES = Path(__file__).with_name("prices.json")
BENCHMARKS = ROOT / "BENCHMARKS.md"
# UK-Abs training judgments (DESIGN.md §2): 10,015,333 words in 693 documents; GPT-J's BPE gives 1.24-1.35 tokens
# per word on legal English, so 1.3 is the planning figure.
WORDS_PER_DOCUMENT = 10_015_333 / 693
TOKENS_PER_WORD = 1.3
# LoRA's throughput relative to full fine-tuning, until a GPU measures LoRA on a training instance: the two runs of
# GPT-J-6B on one H200 that differ only in the method (DESIGN.md §5: SDPA attention, batch 8, activation
# checkpointing on every block, train.py's default way to run): LoRA r=16 on all linear layers 8,486 tokens/s, full
# fine-tuning 11,095 tokens/s. LoRA is slower there although it skips the weight gradients (adapter overhead).
LORA_VS_FULL_MEASURED = (8_486.0, 11_095.0)
LORA_FACTOR = LORA_VS_FULL_MEASURED[0] / LORA_VS_FULL_MEASURED[1]


@dataclass(frozen=True)
class Throughput:
    instance_type: str
    method: str
    tokens_per_second: float
    source: str
    derived: bool = False


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    source: str
    date: str

    def cite(self) -> str:
        return f"{self.source}, {self.date}"


def measured_throughputs(benchmarks: Path = BENCHMARKS) -> list[Throughput]:
    """Rows of BENCHMARKS.md's table between the `throughput-table` markers (whole job, all GPUs)."""
    text = benchmarks.read_text()
    block = re.search(r"<!-- throughput-table:start -->(.*?)<!-- throughput-table:end -->", text, re.DOTALL)
    if not block:
        raise SystemExit(f"error: {benchmarks} has no throughput table (markers throughput-table:start/end)")
    rows = []
    for line in block.group(1).splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"[\d,.]+", cells[2]):
            rows.append(Throughput(cells[0], cells[1], float(cells[2].replace(",", "")), cells[3]))
    return rows


def throughput_for(throughputs: list[Throughput], instance_type: str, method: str) -> Throughput | None:
    """The table's last row for the instance type and method (a newer row, appended below, replaces older ones);
    for LoRA without a row of its own, the full fine-tuning row times LORA_FACTOR, marked as derived."""
    rows = [t for t in throughputs if (t.instance_type, t.method) == (instance_type, method)]
    if rows:
        return rows[-1]
    if method == "lora":
        full = throughput_for(throughputs, instance_type, "full")
        if full is not None:
            lora, measured_full = LORA_VS_FULL_MEASURED
            return Throughput(
                instance_type,
                "lora",
                full.tokens_per_second * LORA_FACTOR,
                f"not measured: {full.tokens_per_second:,.0f} tokens/s of full fine-tuning"
                f" x {LORA_FACTOR:.3f}, LoRA's throughput relative to full fine-tuning measured on one H200"
                f" ({lora:,.0f} / {measured_full:,.0f} tokens/s, DESIGN.md §5)",
                derived=True,
            )
    return None


def training_tokens(settings: Settings) -> float:
    return settings.doc_count * WORDS_PER_DOCUMENT * TOKENS_PER_WORD * settings.epochs


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(path.read_text()))


def price_of(prices: dict[str, Any], region: str, kind: str, instance_type: str) -> Price | None:
    """The table's price of one instance-hour (kind "training" or "hosting") in the region, with its source."""
    entry = prices["regions"].get(region, {}).get(kind, {}).get(instance_type)
    if entry is None:
        return None
    source = prices["sources"][entry["source"]]
    return Price(float(entry["usd"]), source["what"], source["date"])


def flat_prices(prices: dict[str, Any], region: str) -> dict[str, Any]:
    """One region's training prices as {"training_per_hour": {type: USD}}: the shape ops/bench_estimate.py reads."""
    table = prices["regions"].get(region, {}).get("training", {})
    return {"training_per_hour": {name: float(entry["usd"]) for name, entry in table.items()}}


def no_region_line(prices: dict[str, Any], region: str) -> str | None:
    if region in prices["regions"]:
        return None
    known = ", ".join(sorted(prices["regions"]))
    return (
        f"  no SageMaker price is known for {region} ({PRICES.name} has {known}): no cost estimate; add the region's "
        "prices with their source and date"
    )


def training_hours(settings: Settings, tokens_per_second_per_instance: float) -> float:
    """Hours of one training job for the configured run on settings.training_instance_count instances."""
    return training_tokens(settings) / (tokens_per_second_per_instance * settings.training_instance_count) / 3600


def on_demand_cost(settings: Settings, hours: float, price_per_hour: float) -> float:
    return hours * price_per_hour * settings.training_instance_count


def training_on_demand(settings: Settings, prices: dict[str, Any], throughputs: list[Throughput]) -> float | None:
    """The on-demand cost of the run (every job of a tuning job), or None without a throughput or a price."""
    match = throughput_for(throughputs, settings.training_instance_type, settings.method)
    price = price_of(prices, settings.region, "training", settings.training_instance_type)
    if match is None or price is None:
        return None
    one_job = on_demand_cost(settings, training_hours(settings, match.tokens_per_second), price.usd_per_hour)
    return one_job * (settings.tuning_max_jobs if settings.tuning_enabled else 1)


def synth_refusal(settings: Settings) -> str | None:
    """The one-line error with which synth refuses the endpoints' instance type (no kernels for its GPUs in the
    serving image, or too little GPU memory for GPT-J), or None when it accepts it. The settings accept every type
    of the hosting table; the stack's own check (serving_container.py) decides, so cost and synth cannot disagree."""
    try:
        container_settings(settings.endpoint_instance_type)
    except SettingError as error:
        return str(error)
    return None


def endpoint_hourly(settings: Settings, prices: dict[str, Any]) -> float | None:
    """Dollars per hour of every configured endpoint at its minimum capacity (0 with none), or None without a price
    or on a type synth refuses (nothing would be deployed to bill)."""
    count = len(settings.endpoints)
    if not count:
        return 0.0
    if synth_refusal(settings) is not None:
        return None
    price = price_of(prices, settings.region, "hosting", settings.endpoint_instance_type)
    return None if price is None else count * price.usd_per_hour * settings.endpoint_min_capacity


def training_lines(settings: Settings, prices: dict[str, Any], throughputs: list[Throughput]) -> list[str]:
    tokens = training_tokens(settings)
    instance = settings.training_instance_type
    lines = [
        f"Training: {settings.doc_count} documents x {settings.epochs} epochs = ~{tokens / 1e6:.1f} M tokens, "
        f"method {settings.method}, {settings.training_instance_count} x {instance}"
    ]
    if settings.tuning_enabled:
        lines.append(
            f"  tuning the learning rate: at most {settings.tuning_max_jobs} training jobs like this one, "
            f"{settings.tuning_parallel_jobs} at a time"
        )
    match = throughput_for(throughputs, instance, settings.method)
    price = price_of(prices, settings.region, "training", instance)
    missing_region = no_region_line(prices, settings.region)
    if match is None:
        lines.append(
            f"  no measured throughput for {settings.method} on {instance} in BENCHMARKS.md: no time or cost estimate"
        )
    else:
        hours = training_hours(settings, match.tokens_per_second)
        kind = "derived" if match.derived else "measured"
        lines.append(f"  throughput {match.tokens_per_second:,.0f} tokens/s per instance ({kind}: {match.source})")
        lines.append(f"  ~{hours:.1f} h per training job (job start-up and model download not included)")
        if settings.tuning_enabled:
            rounds = math.ceil(settings.tuning_max_jobs / settings.tuning_parallel_jobs)
            lines.append(
                f"  ~{rounds * hours:.1f} h wall time for the tuning job ({rounds} round(s) of ~{hours:.1f} h)"
            )
    if missing_region:
        lines.append(missing_region)
        return lines
    if price is None:
        lines.append(f"  no price for {instance} in {settings.region} in {PRICES.name}: no cost estimate")
        return lines
    lines.append(f"  price ${price.usd_per_hour:,.3f} per instance-hour in {settings.region} ({price.cite()})")
    total = training_on_demand(settings, prices, throughputs)
    if total is not None:
        jobs = settings.tuning_max_jobs if settings.tuning_enabled else 1
        spot = 1 - float(prices["spot_savings_assumed"])
        each = f" ({jobs} jobs x ${total / jobs:,.0f})" if jobs > 1 else ""
        prefix = "at most " if settings.tuning_enabled else ""
        lines.append(f"  on demand: {prefix}${total:,.0f}{each}   with spot: {prefix}${total * spot:,.0f}")
        lines.append(f"  (spot: {prices['spot_savings_source']})")
    return lines


def endpoint_lines(settings: Settings, prices: dict[str, Any]) -> list[str]:
    endpoints = settings.endpoints
    if not endpoints:
        return ["Endpoints: none configured (deploy_base_endpoint=false, fine_tuned_job empty): $0 per hour"]
    refusal = synth_refusal(settings)
    if refusal is not None:  # a price for a type that cannot be deployed would only mislead
        return [
            f"Endpoints: {', '.join(endpoints)} on {settings.endpoint_instance_type}",
            f"  refused at synth, so no cost estimate: {refusal}",
        ]
    missing_region = no_region_line(prices, settings.region)
    if missing_region:
        return [f"Endpoints: {', '.join(endpoints)} on {settings.endpoint_instance_type}", missing_region]
    price = price_of(prices, settings.region, "hosting", settings.endpoint_instance_type)
    hours_per_month = float(prices["hours_per_month"])
    lines = []
    for name in endpoints:
        if price is None:
            lines.append(
                f"Endpoint {name}: no price for {settings.endpoint_instance_type} in {settings.region} in {PRICES.name}"
            )
            continue
        low, high = (price.usd_per_hour * n for n in (settings.endpoint_min_capacity, settings.endpoint_max_capacity))
        lines.append(
            f"Endpoint {name} ({settings.endpoint_instance_type}): "
            f"${low:,.2f}/h (${low * hours_per_month:,.0f}/month) at {settings.endpoint_min_capacity} instance(s), "
            f"${high:,.2f}/h (${high * hours_per_month:,.0f}/month) at {settings.endpoint_max_capacity}"
        )
    if price is not None:
        lines.append(f"  price ${price.usd_per_hour:,.3f} per instance-hour in {settings.region} ({price.cite()})")
    return lines


def report(
    settings: Settings,
    prices: dict[str, Any],
    throughputs: list[Throughput],
    *,
    endpoints: bool = True,
    label: str = "",
) -> list[str]:
    header = f"Cost estimate for {label or 'these settings'} in {settings.region} ({prices['currency']})"
    return [
        header,
        *training_lines(settings, prices, throughputs),
        *(endpoint_lines(settings, prices) if endpoints else []),
    ]


def estimate_lines(settings: Settings, *, endpoints: bool = True, label: str = "") -> list[str]:
    return report(settings, load_prices(), measured_throughputs(), endpoints=endpoints, label=label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make cost", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)

    def run() -> int:
        selection = selection_from(args)
        print("\n".join(estimate_lines(selection.settings(), label=selection.describe())))
        return 0

    return run_command(run, expected=SETTINGS_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
