"""Settings for the operator commands, read exactly as `cdk synth` reads them: cdk.json plus `-c key=value`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config import Settings

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def cdk_context() -> dict[str, Any]:
    """cdk.json's context, as the CDK app reads it (without importing the CDK: `make invoke` stays light)."""
    return dict(json.loads(CDK_JSON.read_text())["context"])


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected -c key=value, got {pair!r}")
        overrides[key.strip()] = value
    return overrides


def project_settings(pairs: Sequence[str] = ()) -> Settings:
    from config import load_settings  # imports the CDK (jsii starts Node.js)

    return load_settings({**cdk_context(), **parse_overrides(pairs)})
