"""The pull-request workflow: permissions per job, AWS credentials only in a job that runs none of the pull request's
code, a word for a fork's pull request, and actionlint (with ShellCheck) on the file. The jobs' own scripts are run
here too: the region read from the settings file, the deployed templates fetched with the AWS CLI against moto on
loopback, and the diff job's script with a synth that really fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from tests.synth import ROOT, Assembly

WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"
# What a job runs that comes from the pull request: its Makefile, its Python, its Node packages.
PULL_REQUEST_CODE = ("make", "python", ".venv", "npm", "npx", "node", "pip", "cdk")


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def jobs() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = workflow()["jobs"]
    return found


def step(job: str, name: str) -> dict[str, Any]:
    (found,) = [s for s in jobs()[job]["steps"] if s.get("name") == name]
    return found


def checks_out_code(job: dict[str, Any]) -> bool:
    """A checkout of more than the settings files (JSON data) brings the pull request's code."""
    for s in job.get("steps", []):
        if str(s.get("uses", "")).startswith("actions/checkout"):
            sparse = str(s.get("with", {}).get("sparse-checkout", "")).split()
            if sparse != ["config/*.json"] or s["with"].get("sparse-checkout-cone-mode") is not False:
                return True
    return False


def runs_pull_request_code(job: dict[str, Any]) -> bool:
    words = " ".join(str(s.get("run", "")) for s in job.get("steps", [])).replace("/", " ").split()
    return checks_out_code(job) or any(word in PULL_REQUEST_CODE for word in words)


def holds_aws_credentials(job: dict[str, Any]) -> bool:
    uses = [str(s.get("uses", "")) for s in job.get("steps", [])]
    return job["permissions"].get("id-token") == "write" or any("configure-aws-credentials" in u for u in uses)


def test_nothing_is_granted_to_the_whole_workflow() -> None:
    assert workflow()["permissions"] == {}
    assert all("permissions" in job for job in jobs().values())


def test_the_test_job_may_only_read_contents() -> None:
    assert jobs()["test"]["permissions"] == {"contents": "read"}


def test_no_job_that_runs_the_pull_requests_code_can_write_or_reach_aws() -> None:
    for name, job in jobs().items():
        if runs_pull_request_code(job):
            assert set(job["permissions"].values()) <= {"read"}, name
            assert not holds_aws_credentials(job), name
    (writer,) = [name for name, job in jobs().items() if job["permissions"].get("pull-requests") == "write"]
    assert not runs_pull_request_code(jobs()[writer])


def test_only_a_job_without_the_pull_requests_code_assumes_the_role() -> None:
    (with_role,) = [name for name, job in jobs().items() if holds_aws_credentials(job)]
    job = jobs()[with_role]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    assert not runs_pull_request_code(job)
    # Every step before the role is assumed is data handling; the AWS CLI is the only command after it.
    names = [s.get("uses") or s.get("name") for s in job["steps"]]
    assert names.index("aws-actions/configure-aws-credentials@v6") < names.index("Fetch the deployed templates")
    assert "needs" not in job or "test" not in job["needs"]  # runs beside the tests
    assert with_role in jobs()["diff"]["needs"]


def test_the_stacks_fetched_are_the_apps(default_app: Assembly) -> None:
    assert sorted(jobs()["deployed"]["env"]["STACKS"].split()) == sorted(default_app.templates)


def test_a_forks_pull_request_gets_a_summary_saying_why() -> None:
    (explains,) = [job for job in jobs().values() if "head.repo.full_name != github.repository" in str(job.get("if"))]
    script = "\n".join(str(s.get("run", "")) for s in explains["steps"])
    assert "GITHUB_STEP_SUMMARY" in script and "fork" in script and "OIDC" in script
    assert explains["permissions"] == {}


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A step's script as GitHub runs a `run:` without a `shell:` on Linux (`bash -e {0}`), in `cwd`."""
    path = cwd / "step.sh"
    path.write_text(script)
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-e", str(path)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def base_env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GITHUB_OUTPUT": str(tmp_path / "github-output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary"),
        **more,
    }


@pytest.mark.parametrize(
    ("env", "settings", "expected"),
    [
        ("default", None, "region=us-east-1"),
        ("eu", {"region": "eu-west-2", "epochs": 1}, "region=eu-west-2"),
        ("eu", {"epochs": 1}, "::error::config/eu.json has no region"),
        ("eu", {"region": "us-east-1; curl x"}, "::error::config/eu.json: region us-east-1; curl x is not an AWS"),
        ("../etc", None, "::error::CDK_ENV=../etc is not an environment name"),
    ],
)
def test_the_region_is_the_settings_files(
    tmp_path: Path, env: str, settings: dict[str, Any] | None, expected: str
) -> None:
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "default.json", tmp_path / "config" / "default.json")
    if settings is not None:
        (tmp_path / "config" / f"{env}.json").write_text(json.dumps(settings))
    result = bash(step("deployed", "The region of the settings file")["run"], tmp_path, base_env(tmp_path, CDK_ENV=env))
    output = (tmp_path / "github-output").read_text() if (tmp_path / "github-output").exists() else ""
    if expected.startswith("region="):
        assert (result.returncode, output) == (0, expected + "\n"), result.stdout + result.stderr
    else:
        assert result.returncode == 1 and output == ""
        assert result.stdout.startswith(expected)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def aws_cli_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    return base_env(
        tmp_path,
        STACKS=jobs()["deployed"]["env"]["STACKS"],
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=endpoint,
        AWS_MAX_ATTEMPTS="1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )


# The AWS CLI is what the runner has (GitHub's images ship it); a machine without it cannot run these two tests.
needs_aws_cli = pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI (aws) is not installed")


@needs_aws_cli
def test_the_deployed_templates_are_fetched_and_an_undeployed_stack_is_new(moto: MotoServer, tmp_path: Path) -> None:
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName="LegalGptjDataset", TemplateBody=json.dumps(template))
    try:
        script = step("deployed", "Fetch the deployed templates")["run"]
        result = bash(script, tmp_path, aws_cli_env(tmp_path, moto.endpoint_url))
    finally:
        cfn.delete_stack(StackName="LegalGptjDataset")
    assert result.returncode == 0, result.stdout + result.stderr
    deployed = tmp_path / "deployed"
    assert sorted(p.name for p in deployed.iterdir()) == ["LegalGptjDataset.template.json", "get-template.log"]
    assert json.loads((deployed / "LegalGptjDataset.template.json").read_text()) == template
    log = (deployed / "get-template.log").read_text()  # every stack's outcome, one after the other
    assert "LegalGptjDataset: deployed in us-east-1" in log
    for stack in ("LegalGptjTraining", "LegalGptjServing"):
        assert f"Stack with id {stack} does not exist" in log
        assert f"{stack}: not deployed in us-east-1 (a new stack)" in log


@needs_aws_cli
def test_any_other_error_fails_the_fetch(tmp_path: Path) -> None:
    # Nothing listens there: not "does not exist", so not a new stack.
    with MotoServer() as gone:
        url = gone.endpoint_url
    result = bash(step("deployed", "Fetch the deployed templates")["run"], tmp_path, aws_cli_env(tmp_path, url))
    assert result.returncode == 1
    assert result.stdout.startswith("::error::cannot read the deployed template of LegalGptjDataset in us-east-1:")
    assert not (tmp_path / "deployed" / "LegalGptjDataset.template.json").exists()


def sandbox(tmp_path: Path) -> Path:
    """The repository as the diff job checks it out, with a settings file config/ci.json that fails the synth: the
    files linked, config/ copied (the broken file is added there only), this checkout's virtualenv and Node packages
    (so `make setup` has nothing to do)."""
    work = tmp_path / "repo"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"config", "cdk.out", "review", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"}:
            (work / entry.name).symlink_to(entry)
    shutil.copytree(ROOT / "config", work / "config", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "config" / "ci.json").write_text(json.dumps({"region": "us-east-1", "doc_cuont": 250}))
    (work / "review" / "deployed").mkdir(parents=True)  # what the download of the `deployed` artifact makes
    return work


def test_a_synth_that_fails_fails_the_job_and_still_reaches_the_comment(tmp_path: Path) -> None:
    work = sandbox(tmp_path)
    env = base_env(tmp_path, CDK_ENV="ci", BASE_SHA="0" * 40, PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    result = bash(step("diff", "Synth and render the comment")["run"], work, env)
    assert result.returncode == 0, result.stdout + result.stderr  # the artifact and the comment must still come
    status = (work / "review" / "status").read_text().strip()
    assert status == "2"  # make's status for a failed recipe
    comment = (work / "review" / "comment.md").read_text()
    refusal = "config/ci.json: unknown setting doc_cuont=250"
    assert refusal in (work / "review" / "synth.log").read_text()
    assert "### Synth failed (exit status 2): no diff" in comment and refusal in comment
    assert comment in (tmp_path / "step-summary").read_text()
    upload = [s for s in jobs()["diff"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload and upload[0]["if"] == "${{ always() }}"
    last = jobs()["diff"]["steps"][-1]["run"]
    assert bash(last, work, env).returncode == 2  # the job's last step fails it
    assert "needs.diff.result == 'failure'" in jobs()["comment"]["if"]


def test_stacks_are_diffed_through_the_rendering_script() -> None:
    script = step("diff", "Synth and render the comment")["run"]
    assert "python -m tools.render_diff" in script and "--before review/deployed" in script
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
