"""`make synth|deploy|diff|destroy` (ops/cdk.py): the pinned CLI gets the environment's file and C= as context;
`deploy` refuses a C= (or a -c among the CLI's arguments) that changes the committed file unless the trial is explicit.
The preflight that deploy runs next is tested in test_preflight.py; here it is skipped (--skip-preflight)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ops import cdk

Calls = list[list[str]]


def run(argv: list[str]) -> tuple[int, Calls]:
    calls: Calls = []
    status = cdk.main(argv, execute=lambda path, args: calls.append(args))
    return status, calls


def test_every_command_names_the_environment_and_each_c_word() -> None:
    status, calls = run(["synth", "--C", "doc_count=250 use_spot=true", "--", "--quiet"])
    assert status == 0
    assert calls == [
        [str(cdk.CDK), "synth", "-c", "env=default", "-c", "doc_count=250", "-c", "use_spot=true", "--quiet"]
    ]


def test_deploy_refuses_a_c_that_changes_the_committed_file(capsys: pytest.CaptureFixture[str]) -> None:
    status, calls = run(["deploy", "--C", "epochs=1", "--", "--all"])
    assert (status, calls) == (1, [])
    assert capsys.readouterr().err == (
        "error: C= changes what config/default.json deploys (epochs 3 -> 1): change the file (and commit it), "
        "or deploy this trial on purpose with TRIAL=1\n"
    )


def test_deploy_of_a_c_the_file_already_says_goes_ahead() -> None:
    status, calls = run(["deploy", "--skip-preflight", "--C", "epochs=3", "--", "--all"])
    assert status == 0
    assert calls[0][1:] == ["deploy", "-c", "env=default", "-c", "epochs=3", "--all"]


def test_an_explicit_trial_deploys_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    status, calls = run(["deploy", "--trial", "--skip-preflight", "--C", "epochs=1", "--", "--all"])
    assert status == 0 and calls[0][-3:] == ["-c", "epochs=1", "--all"]
    assert capsys.readouterr().err.splitlines()[0] == "note: deploying a trial, not config/default.json as committed"


@pytest.mark.parametrize(
    "given",
    [["-c", "epochs=1"], ["--context", "epochs=1"], ["--context=epochs=1"], ["-c=epochs=1"], ["-cepochs=1"]],
)
def test_a_context_pair_among_the_clis_arguments_is_a_setting(
    given: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # `make deploy ARGS="-c epochs=1"` must not reach the CLI unseen: it is refused as C= is.
    status, calls = run(["deploy", "--skip-preflight", "--", "--all", *given])
    assert (status, calls) == (1, [])
    assert capsys.readouterr().err == (
        "error: -c changes what config/default.json deploys (epochs 3 -> 1): change the file (and commit it), "
        "or deploy this trial on purpose with TRIAL=1\n"
    )
    # Elsewhere it is a setting like C='s words: checked, and handed to the CLI as one -c after the environment.
    status, calls = run(["synth", "--", "--quiet", *given])
    assert (status, calls[0][2:]) == (0, ["-c", "env=default", "-c", "epochs=1", "--quiet"])


def test_a_context_pair_is_checked_like_c(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["synth", "--C", "epochs=2", "--", "-c", "epochs=1"]) == (1, [])
    assert capsys.readouterr().err == "error: epochs is given twice: '2' in C= and '1' on the command line\n"
    assert run(["deploy", "--skip-preflight", "--", "--all", "-c", "doc_count=0"]) == (1, [])
    assert capsys.readouterr().err == "error: invalid setting doc_count=0: expected an integer from 1 to 693\n"
    assert run(["synth", "--", "--quiet", "-c"]) == (1, [])
    assert capsys.readouterr().err == "error: -c at the end of ARGS: expected -c key=value\n"


def test_a_malformed_c_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    status, calls = run(["diff", "--C", "fine_tuned_job=my job"])
    assert (status, calls) == (1, [])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'job' is not key=value: a value cannot contain a space" in err


def test_a_bad_value_is_refused_before_deploying(capsys: pytest.CaptureFixture[str]) -> None:
    status, calls = run(["deploy", "--C", "doc_count=0", "--", "--all"])
    assert (status, calls) == (1, [])
    assert capsys.readouterr().err == "error: invalid setting doc_count=0: expected an integer from 1 to 693\n"


@pytest.mark.skipif(not cdk.CDK.exists(), reason="run `make setup` for the pinned CLI")
def test_make_diff_passes_only_options_the_pinned_cli_knows() -> None:
    """`cdk diff --all` made the CLI warn `Unknown option(s): --all`: every option `make diff` gives must be one
    that the pinned CLI's own help lists."""
    make = subprocess.run(
        [shutil.which("make") or "make", "-n", "--no-print-directory", "diff", "C=epochs=1"],
        cwd=cdk.ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    (line,) = [line for line in make.stdout.splitlines() if "ops.cdk diff" in line]
    rest = line.split(" -- ", 1)[1].split() if " -- " in line else []
    _, calls = run(["diff", "--C", "epochs=1", "--", *rest])
    options = [arg for arg in calls[0][2:] if arg.startswith("-")]
    # On the Node.js 24 that tests/synth.py (imported by conftest.py) put first on PATH.
    help_text = subprocess.run(
        [str(cdk.CDK), "diff", "--help"], cwd=cdk.ROOT, capture_output=True, text=True, timeout=120
    ).stdout
    assert options and all(f"{option}," in help_text or f"{option} " in help_text for option in options), options
    assert "--all" not in options
