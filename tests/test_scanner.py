"""The independent IaC scanner (checkov, pinned in .venv-scan) over every tested configuration: no failed check,
and every skipped one skipped by an acknowledgement in the template that gives its reason.

Slow to install (its own virtualenv, `make scan-setup`), fast to run: under the e2e marker, so `make test-e2e` (and
.ci/run) install and run it, `make test` does not. The scanner never reaches the network here: its update check and
its platform download are off, and any request it would still make goes to a closed loopback port.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.synth import CONFIGURATIONS, ROOT, synth

pytestmark = pytest.mark.e2e

CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"
CLOSED_PORT = "http://127.0.0.1:9"
SCAN_OPTIONS = ["--output", "json", "--compact", "--skip-download", "--skip-results-upload"]


def scan(directory: Path) -> dict[str, Any]:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make scan-setup` (or `make test-e2e`) installs it"
    environment = {
        **os.environ,
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
        "HTTP_PROXY": CLOSED_PORT,
        "HTTPS_PROXY": CLOSED_PORT,
        "NO_PROXY": "",
    }
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(directory), "--framework", "cloudformation", *SCAN_OPTIONS],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    # checkov exits 1 when a check fails; anything else but 0 is the scanner itself failing.
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report["check_type"] == "cloudformation", report
    return report


def failed(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['resource']} ({Path(c['file_path']).name})" for c in report["results"]["failed_checks"]
    ]


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_the_scanner_finds_nothing_unacknowledged(name: str) -> None:
    app = synth(**CONFIGURATIONS[name])
    report = scan(app.outdir)
    assert report["summary"]["resource_count"] > 0 and report["summary"]["passed"] > 0
    assert failed(report) == []
    templates = {f"{stack}.template.json": template for stack, template in app.templates.items()}
    for check in report["results"]["skipped_checks"]:
        comment = check["check_result"]["suppress_comment"]
        assert len(comment) >= 40 and comment != "No comment provided", check["check_id"]
        # The reason the scanner printed is the one written into the template, on that resource.
        logical_id = check["resource"].split(".", 1)[1]
        resource = templates[Path(check["file_path"]).name]["Resources"][logical_id]
        skips = resource["Metadata"]["checkov"]["skip"]
        assert {"id": check["check_id"], "comment": comment} in skips


def test_the_scanner_fails_an_unencrypted_log_group_and_honours_a_skip_only_for_its_check(tmp_path: Path) -> None:
    """The test above can fail: a new finding is reported, and an acknowledgement covers its own check only."""
    template = {
        "Resources": {
            "Plain": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 30}},
            "Acknowledged": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"RetentionInDays": 30},
                "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_158", "comment": "a reason for this group"}]}},
            },
        }
    }
    (tmp_path / "probe.template.json").write_text(json.dumps(template))
    report = scan(tmp_path)
    assert failed(report) == ["CKV_AWS_158 AWS::Logs::LogGroup.Plain (probe.template.json)"]
    skipped = [(c["check_id"], c["resource"]) for c in report["results"]["skipped_checks"]]
    assert skipped == [("CKV_AWS_158", "AWS::Logs::LogGroup.Acknowledged")]
