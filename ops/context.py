"""Settings for the operator commands, read exactly as `cdk synth` reads them: cdk.json plus `-c key=value`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from config import Settings, load_settings

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected -c key=value, got {pair!r}")
        overrides[key.strip()] = value
    return overrides


def project_settings(pairs: Sequence[str] = ()) -> Settings:
    context = json.loads(CDK_JSON.read_text())["context"]
    return load_settings({**context, **parse_overrides(pairs)})
