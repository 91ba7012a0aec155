"""`make cost`: what the configured training run and endpoints would cost, from a price table in the repository
and the training throughput measured in BENCHMARKS.md. Estimates, not quotes: the sources are printed with them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from config import Settings
from ops.context import project_settings

ROOT = Path(__file__).resolve().parents[1]
PRICES = Path(__file__).with_name("prices.json")
BENCHMARKS = ROOT / "BENCHMARKS.md"
# UK-Abs training judgments (DESIGN.md §2): 10,015,333 words in 693 documents; GPT-J's BPE gives 1.24-1.35 tokens
# per word on legal English, so 1.3 is the planning figure.
WORDS_PER_DOCUMENT = 10_015_333 / 693
TOKENS_PER_WORD = 1.3


@dataclass(frozen=True)
class Throughput:
    instance_type: str
    method: str
    tokens_per_second: float
    source: str


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
    """The table's last row for the instance type and method: a newer row (appended below) replaces older ones."""
    rows = [t for t in throughputs if (t.instance_type, t.method) == (instance_type, method)]
    return rows[-1] if rows else None


def training_tokens(settings: Settings) -> float:
    return settings.doc_count * WORDS_PER_DOCUMENT * TOKENS_PER_WORD * settings.epochs


def load_prices() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(PRICES.read_text()))


def training_hours(settings: Settings, tokens_per_second_per_instance: float) -> float:
    """Hours of training for the configured run on settings.training_instance_count instances."""
    return training_tokens(settings) / (tokens_per_second_per_instance * settings.training_instance_count) / 3600


def on_demand_cost(settings: Settings, hours: float, price_per_hour: float) -> float:
    return hours * price_per_hour * settings.training_instance_count


def training_lines(settings: Settings, prices: dict[str, Any], throughputs: list[Throughput]) -> list[str]:
    tokens = training_tokens(settings)
    lines = [
        f"Training: {settings.doc_count} documents x {settings.epochs} epochs = ~{tokens / 1e6:.1f} M tokens, "
        f"method {settings.method}, {settings.training_instance_count} x {settings.training_instance_type}"
    ]
    match = throughput_for(throughputs, settings.training_instance_type, settings.method)
    price = prices["training_per_hour"].get(settings.training_instance_type)
    if match is None:
        lines.append(
            f"  no measured throughput for {settings.method} on {settings.training_instance_type} in BENCHMARKS.md:"
            " no time or cost estimate"
        )
    elif price is None:
        lines.append(f"  no price for {settings.training_instance_type} in {PRICES.name}: no cost estimate")
    else:
        hours = training_hours(settings, match.tokens_per_second)
        on_demand = on_demand_cost(settings, hours, float(price))
        spot_savings = float(prices["spot_savings_assumed"])
        lines.append(f"  throughput {match.tokens_per_second:,.0f} tokens/s per instance ({match.source})")
        lines.append(f"  ~{hours:.1f} h of training (job start-up and model download not included)")
        lines.append(f"  on demand: ${on_demand:,.0f}   with spot: ${on_demand * (1 - spot_savings):,.0f}")
        lines.append(f"  (spot: {prices['spot_savings_source']})")
    return lines


def endpoint_lines(settings: Settings, prices: dict[str, Any]) -> list[str]:
    endpoints = [
        name for name, on in (("base", settings.deploy_base_endpoint), ("fine-tuned", settings.fine_tuned_job)) if on
    ]
    if not endpoints:
        return ["Endpoints: none configured (deploy_base_endpoint=false, fine_tuned_job empty): $0 per hour"]
    hourly = prices["hosting_per_hour"].get(settings.endpoint_instance_type)
    hours_per_month = float(prices["hours_per_month"])
    lines = []
    for name in endpoints:
        if hourly is None:
            lines.append(f"Endpoint {name}: no price for {settings.endpoint_instance_type} in {PRICES.name}")
            continue
        low, high = (float(hourly) * n for n in (settings.endpoint_min_capacity, settings.endpoint_max_capacity))
        lines.append(
            f"Endpoint {name} ({settings.endpoint_instance_type}): "
            f"${low:,.2f}/h (${low * hours_per_month:,.0f}/month) at {settings.endpoint_min_capacity} instance(s), "
            f"${high:,.2f}/h (${high * hours_per_month:,.0f}/month) at {settings.endpoint_max_capacity}"
        )
    return lines


def report(
    settings: Settings, prices: dict[str, Any], throughputs: list[Throughput], *, endpoints: bool = True
) -> list[str]:
    header = f"Cost estimate for {settings.region} (prices: {prices['source']}, {prices['date']})"
    return [
        header,
        *training_lines(settings, prices, throughputs),
        *(endpoint_lines(settings, prices) if endpoints else []),
    ]


def estimate_lines(settings: Settings, *, endpoints: bool = True) -> list[str]:
    return report(settings, load_prices(), measured_throughputs(), endpoints=endpoints)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make cost", description=__doc__)
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="a setting")
    args = parser.parse_args(argv)
    try:
        settings = project_settings(args.context)
    except ValueError as error:  # a bad setting (SettingError) or -c value
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(estimate_lines(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
