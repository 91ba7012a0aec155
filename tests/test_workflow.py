"""The pull-request workflow: permissions per job, no write token where the pull request's code runs, a word for a
fork's pull request, and actionlint (with ShellCheck) on the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.synth import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def jobs() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = workflow()["jobs"]
    return found


def runs_pull_request_code(job: dict[str, Any]) -> bool:
    steps = job.get("steps", [])
    return any(str(s.get("uses", "")).startswith("actions/checkout") for s in steps)


def test_nothing_is_granted_to_the_whole_workflow() -> None:
    assert workflow()["permissions"] == {}
    assert all("permissions" in job for job in jobs().values())


def test_the_test_job_may_only_read_contents() -> None:
    assert jobs()["test"]["permissions"] == {"contents": "read"}


def test_no_job_that_runs_the_pull_requests_code_can_write() -> None:
    for name, job in jobs().items():
        if runs_pull_request_code(job):
            assert "write" not in {v for k, v in job["permissions"].items() if k != "id-token"}, name
    (writer,) = [name for name, job in jobs().items() if job["permissions"].get("pull-requests") == "write"]
    assert not runs_pull_request_code(jobs()[writer])
    assert not any("make" in str(s.get("run", "")).split() for s in jobs()[writer]["steps"])


def test_only_same_repository_pull_requests_get_the_role() -> None:
    (with_token,) = [name for name, job in jobs().items() if job["permissions"].get("id-token") == "write"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in jobs()[with_token]["if"]


def test_a_forks_pull_request_gets_a_summary_saying_why() -> None:
    (explains,) = [job for job in jobs().values() if "head.repo.full_name != github.repository" in str(job.get("if"))]
    script = "\n".join(str(s.get("run", "")) for s in explains["steps"])
    assert "GITHUB_STEP_SUMMARY" in script and "fork" in script and "OIDC" in script
    assert explains["permissions"] == {}


def test_a_synth_failure_fails_the_job_and_still_reaches_the_comment() -> None:
    diff = jobs()["diff"]
    script = "\n".join(str(s.get("run", "")) for s in diff["steps"])
    assert 'make synth ENV="$CDK_ENV" > review/synth.log 2>&1 || status=$?' in script  # kept, not silenced
    assert '--synth-status "$status"' in script
    upload = [s for s in diff["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload and upload[0]["if"] == "${{ always() }}"
    assert diff["steps"][-1]["run"].startswith("exit ")
    assert "needs.diff.result == 'failure'" in jobs()["comment"]["if"]


def test_stacks_are_diffed_through_the_rendering_script() -> None:
    script = "\n".join(str(s.get("run", "")) for s in jobs()["diff"]["steps"])
    assert "python -m tools.render_diff" in script
    assert "cdk list" not in script and "node_modules/.bin/cdk" not in script


@pytest.mark.skipif(not (Path(sys.executable).parent / "actionlint").exists(), reason="make setup installs actionlint")
def test_actionlint_finds_nothing() -> None:
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}  # ShellCheck from the virtualenv checks the run: scripts too
    assert shutil.which("shellcheck", path=env["PATH"])
    result = subprocess.run(
        [str(bin_dir / "actionlint"), str(WORKFLOW)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
