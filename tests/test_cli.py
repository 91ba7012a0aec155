"""The app through its real entry points: `python app.py` as the CDK CLI runs it, and the pinned CLI itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Importing tests.synth put the virtualenv's Node.js 24 first on PATH: the app and the CLI run below inherit it.
from tests.synth import CDK_CONTEXT, ROOT


def run_app(outdir: Path, **overrides: object) -> subprocess.CompletedProcess[str]:
    """app.py as the CLI runs it with cdk.json's context: the settings come from config/default.json (its region)."""
    flags = {k: v for k, v in CDK_CONTEXT.items() if k != "region"}
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**flags, **overrides}),
    }
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_two_synths_are_byte_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for outdir in (first, second):
        result = run_app(outdir)
        assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in first.glob("*.template.json"))
    assert names and names == sorted(p.name for p in second.glob("*.template.json"))
    for name in [*names, "manifest.json"]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # Without -c, the app synthesizes the committed file: its region decides where every stack goes.
    committed = json.loads((ROOT / "config" / "default.json").read_text())
    manifest = json.loads((first / "manifest.json").read_text())
    regions = {a["environment"].rsplit("/", 1)[-1] for a in manifest["artifacts"].values() if "environment" in a}
    assert regions == {committed["region"]}


def test_bad_setting_stops_the_app_with_one_line(tmp_path: Path) -> None:
    result = run_app(tmp_path, doc_count=0)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting doc_count=0: expected an integer from 1 to 693"
    ]
    assert "Node 20" not in result.stderr


@pytest.mark.skipif(not (ROOT / "node_modules/.bin/cdk").exists(), reason="run `make setup` for the pinned CLI")
def test_pinned_cdk_cli_reports_the_bad_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "node_modules/.bin/cdk"), "synth", "-c", "doc_count=0", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode != 0
    assert "error: invalid setting doc_count=0: expected an integer from 1 to 693" in result.stderr
    assert "end-of-life" not in result.stderr + result.stdout


# Every Turing (T4) type: synth refuses them all, the 4-GPU one too, whose memory would hold GPT-J: the serving
# image's vLLM has no kernels for sm_75 (stacks/serving_image.py, docs/decisions.md S10).
@pytest.mark.parametrize("instance_type", ["ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.g4dn.12xlarge"])
def test_setting_rejected_while_building_stacks_is_one_line_too(tmp_path: Path, instance_type: str) -> None:
    result = run_app(tmp_path, deploy_base_endpoint=True, endpoint_instance_type=instance_type)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: invalid setting endpoint_instance_type='{instance_type}': expected one of ")
    assert "vLLM has CUDA kernels for sm_80 and newer only, none for Turing: ml.g4dn)" in lines[0]
    assert "ml.g4dn" not in lines[0].split("expected one of ")[1].split(" (")[0], "a refused type is not offered"
    assert not list(tmp_path.glob("*.template.json")), "nothing is synthesized"


def test_an_unknown_environment_stops_the_app_with_one_line(tmp_path: Path) -> None:
    result = run_app(tmp_path, env="prod")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: ENV=prod: no settings file config/prod.json (committed environments: default)"
    ]
