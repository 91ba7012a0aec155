"""Synthesize the app the way `cdk synth` does (cdk.json context plus overrides), once per configuration."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# jsii starts Node.js from PATH: the virtualenv's Node 24, never an end-of-life system Node.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

import aws_cdk as cdk
from aws_cdk import assertions

from config import load_settings
from stacks.app_builder import STACK_PREFIX, build_pipeline

ROOT = Path(__file__).resolve().parents[1]
# cdk.json's feature flags and the code's defaults in a fixed region, not a committed deployment (config/<env>.json):
# changing what a team deploys does not change the tests; tests/test_settings.py checks the committed files.
CDK_CONTEXT: dict[str, Any] = {**json.loads((ROOT / "cdk.json").read_text())["context"], "region": "us-east-1"}
_OUT = Path(tempfile.mkdtemp(prefix="legal-gptj-synth-"))
atexit.register(shutil.rmtree, _OUT, ignore_errors=True)  # every synth of this test process, once it ends


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    templates: dict[str, dict[str, Any]]

    def template(self, stack: str) -> assertions.Template:
        return assertions.Template.from_json(self.templates[stack])

    def resources(self, stack: str, resource_type: str) -> dict[str, dict[str, Any]]:
        resources = self.templates[stack]["Resources"]
        return {k: v for k, v in resources.items() if v["Type"] == resource_type}


def context_with(**overrides: object) -> dict[str, Any]:
    return {**CDK_CONTEXT, **overrides}


@cache
def _synth_frozen(items: tuple[tuple[str, object], ...]) -> Assembly:
    context = context_with(**dict(items))
    outdir = _OUT / f"config-{len(list(_OUT.iterdir()))}"
    app = cdk.App(outdir=str(outdir), context=context)
    build_pipeline(app, load_settings(context))
    app.synth()
    templates = {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in sorted(outdir.glob("*.template.json"))
    }
    return Assembly(outdir=outdir, templates=templates)


def synth(**overrides: object) -> Assembly:
    """The synthesized app for these settings; the first call per configuration synthesizes, later ones reuse it."""
    return _synth_frozen(tuple(sorted(overrides.items())))


# The app's stacks, by name, for parametrizing tests without synthesizing at collection time
# (tests/test_snapshots.py checks that a synth gives exactly these).
STACKS = tuple(f"{STACK_PREFIX}{part}" for part in ("Dataset", "Serving", "Training"))

# Configurations the suite checks as a whole (lint, nag, clean-up): the defaults and each switch.
CONFIGURATIONS: dict[str, dict[str, object]] = {
    "default": {},
    "retain_data": {"retain_data": True},
    # Serving: each endpoint switch alone (the fine-tuned one in another region: image account, ARNs), and both
    # together on an 8-GPU type (tensor parallelism 8, the GPU memory alarm summed over 8 GPUs; the default type has
    # 4) with non-default autoscaling and an e-mail. The notebook's ml.g4dn.12xlarge is refused at synth (Turing).
    "base_endpoint": {"deploy_base_endpoint": True},
    "fine_tuned_endpoint_eu_west_1": {"region": "eu-west-1", "fine_tuned_job": "legal-gptj-lora-2024-07-01-08-30-00"},
    "both_endpoints_g5_48xlarge": {
        "deploy_base_endpoint": True,
        "fine_tuned_job": "legal-gptj-full-2024-06-01-12-00-00",
        "endpoint_instance_type": "ml.g5.48xlarge",
        "endpoint_min_capacity": 2,
        "endpoint_max_capacity": 4,
        "endpoint_target_invocations": 25,
        "endpoint_scale_in_cooldown_seconds": 600,
        "endpoint_scale_out_cooldown_seconds": 120,
        "idle_alarm_hours": 12,
        "notification_email": "ops@example.com",
    },
    # Training: one job on spot, on an EBS-only type (volume key), every training setting off its default, in
    # another region (image account, ARNs); and the tuning variant on spot.
    "training_spot_ebs_eu_west_1": {
        "region": "eu-west-1",
        "training_instance_type": "ml.p3.16xlarge",
        "training_instance_count": 2,
        "training_volume_gb": 800,
        "method": "lora",
        "epochs": 2,
        "learning_rate": 0.0001,
        "block_size": 512,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 8,
        "doc_count": 250,
        "use_spot": True,
        "max_run_seconds": 20000,
        "max_wait_seconds": 40000,
        "notification_email": "ml@example.com",
    },
    "training_tuning_spot": {
        "tuning_enabled": True,
        "use_spot": True,
        "tuning_max_jobs": 4,
        "tuning_parallel_jobs": 2,
        "tuning_learning_rate_min": 2e-05,
        "tuning_learning_rate_max": 0.0003,
    },
}

_VOLATILE = [
    (re.compile(r"[0-9a-f]{64}(\.zip|\.json)?"), "<asset-hash>"),
    (re.compile(r"(CurrentVersion[0-9A-F]{8})[0-9a-f]{32}"), r"\1<version-hash>"),
]


def normalized(template: dict[str, Any]) -> dict[str, Any]:
    """The template with asset hashes replaced, so snapshots change only when the infrastructure does."""
    text = json.dumps(template, sort_keys=True)
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    result: dict[str, Any] = json.loads(text)
    return result
