"""The pull-request comment (tools/render_diff.py): settings that differ from the defaults, cost before and after,
each stack diffed once, and long JSON strings as readable line-by-line diffs of their pretty-printed form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools import render_diff

BASE_SETTINGS = {"region": "us-east-1", "epochs": 3}
DEFINITION: dict[str, Any] = {
    "Comment": "a long state machine " + "x" * 200,
    "States": {"Train": {"Type": "Task", "Arguments": {"epochs": "3", "Resource": "arn:PLACEHOLDER:sagemaker"}}},
}


def machine(epochs: str) -> dict[str, Any]:
    """A template whose definition is an Fn::Join around an intrinsic, as the CDK writes it."""
    text = json.dumps({**DEFINITION, "States": {"Train": {**DEFINITION["States"]["Train"]}}}, separators=(",", ":"))
    text = text.replace('"epochs":"3"', f'"epochs":"{epochs}"')
    before, after = text.split("PLACEHOLDER")
    joined = {"Fn::Join": ["", [before, {"Ref": "AWS::Partition"}, after]]}
    return {
        "Resources": {"Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {"Definition": joined}}}
    }


def test_a_one_value_change_in_a_joined_definition_is_one_changed_line() -> None:
    (diff,) = render_diff.string_diffs(machine("3"), machine("1"))
    assert diff.path == "Resources.Machine.Properties.Definition"
    changed = [line for line in diff.lines if line.startswith(("+", "-"))]
    assert changed == ['-        "epochs": "3",', '+        "epochs": "1",']
    assert any('"Resource": "arn:${AWS::Partition}:sagemaker"' in line for line in diff.lines)


def test_short_strings_and_equal_templates_give_no_readable_diff() -> None:
    assert list(render_diff.string_diffs(machine("3"), machine("3"))) == []
    assert list(render_diff.string_diffs({"a": {"b": "short"}}, {"a": {"b": "other"}})) == []


def test_a_new_or_removed_resources_long_strings_are_shown_whole(tmp_path: Path) -> None:
    # A resource (or a whole stack) on one side only: its long strings appear nowhere else, the CLI's line is cut.
    (added,) = render_diff.string_diffs({"Resources": {}}, machine("1"))
    (removed,) = render_diff.string_diffs(machine("3"), {})
    assert added.path == removed.path == "Resources.Machine.Properties.Definition"
    body = [line for line in added.lines if not line.startswith("@@")]
    assert body and all(line.startswith("+") for line in body)
    assert '+        "epochs": "1",' in body
    assert all(line.startswith("-") for line in removed.lines if not line.startswith("@@"))
    # In the comment, a new stack's definition is there in full.
    after = write_assembly(tmp_path / "after", {"LegalGptjTraining": machine("1")})
    text = render_diff.render(
        env_label="config/default.json", settings_before=BASE_SETTINGS, settings_after=BASE_SETTINGS,
        before_dir=None, after_dir=after, run_cli=fake_cli([]),
    )  # fmt: skip
    assert "<code>LegalGptjTraining</code>: new stack" in text
    assert '+        "epochs": "1",' in text and '"Resource": "arn:${AWS::Partition}:sagemaker"' in text


def test_long_strings_in_lists_of_another_length_are_still_compared() -> None:
    long = "y" * 250
    diffs = list(render_diff.string_diffs({"A": [long]}, {"A": [long, long + "z"]}))
    assert [d.path for d in diffs] == ["A[1]"]


def test_text_that_is_not_json_is_split_at_its_structure() -> None:
    lines = render_diff.pretty('{"a":[1,${Token}],"b":"x,{y}"}')
    assert lines == ["{", '  "a":[', "    1,", "    ${Token}", "  ],", '  "b":"x,{y}"', "}"]


def test_over_long_cli_lines_are_cut_and_point_below() -> None:
    text = render_diff.shorten_long_lines("short\n" + "[-] " + "y" * 1000, limit=100)
    short, long = text.splitlines()
    assert short == "short"
    assert long.startswith("[-] yyy") and long.endswith("(1,004 characters: pretty-printed diff below)")
    assert len(long) < 200


def test_settings_rows_show_what_differs_from_the_defaults_and_what_changed() -> None:
    rows = render_diff.settings_rows(BASE_SETTINGS, {"region": "us-east-1", "epochs": 1, "use_spot": True})
    assert rows == [
        ("region", "(required)", "us-east-1", "us-east-1"),
        ("epochs", "3", "3", "1"),
        ("use_spot", "false", "false", "true"),
    ]
    text = "\n".join(render_diff.settings_section("config/default.json", BASE_SETTINGS, {**BASE_SETTINGS, "epochs": 1}))
    assert "| **`epochs`** | `3` | `3` | **`1`** |" in text
    assert "| `region` | `(required)` | `us-east-1` | `us-east-1` |" in text


def test_settings_rows_compare_values_as_the_app_reads_them() -> None:
    """A file may write a flag or a number as a string (the settings accept `-c` strings); that is no change."""
    as_strings = {"region": "us-east-1", "use_spot": "false", "epochs": "3", "doc_count": " 693"}
    assert render_diff.settings_rows(BASE_SETTINGS, as_strings) == [("region", "(required)", "us-east-1", "us-east-1")]
    refused = render_diff.settings_rows(None, {"region": "us-east-1", "epochs": "three"})
    assert ("epochs", "3", "-", "three") in refused


def fake_cli(calls: list[tuple[str, str]], status: int = 0) -> render_diff.CliRunner:
    def run(stack: str, after: Path, before: Path) -> render_diff.CliDiff:
        calls.append((stack, before.name))
        return render_diff.CliDiff(status, f"Stack {stack}\n[~] something changed\n" + "[-] " + "z" * 400)

    return run


def write_assembly(folder: Path, templates: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir()
    for stack, template in templates.items():
        (folder / f"{stack}.template.json").write_text(json.dumps(template))
    return folder


def test_the_comment_opens_with_settings_and_cost_then_each_stack_once(tmp_path: Path) -> None:
    before = write_assembly(tmp_path / "before", {"LegalGptjTraining": machine("3")})
    after = write_assembly(tmp_path / "after", {"LegalGptjTraining": machine("1"), "LegalGptjDataset": {}})
    calls: list[tuple[str, str]] = []
    text = render_diff.render(
        env_label="config/default.json",
        settings_before=BASE_SETTINGS,
        settings_after={**BASE_SETTINGS, "epochs": 1},
        before_dir=before,
        after_dir=after,
        run_cli=fake_cli(calls),
    )
    sections = [line for line in text.splitlines() if line.startswith("##")]
    assert sections == [
        "## cdk diff: `config/default.json`",
        "### Settings (config/default.json) that differ from the defaults",
        "### Cost before and after",
        "### Stacks, each diffed once against the templates in the before folder",
    ]
    # Each stack once; a stack without a template before is diffed against an empty one (a new stack).
    assert calls == [
        ("LegalGptjDataset", "empty.template.json"),
        ("LegalGptjTraining", "LegalGptjTraining.template.json"),
    ]
    assert "<code>LegalGptjDataset</code>: new stack" in text
    assert "`Resources.Machine.Properties.Definition`, pretty-printed:" in text
    assert '+        "epochs": "1",' in text
    assert "z" * 400 not in text
    assert "**Training run, on demand: $139 → $46; endpoints at minimum capacity: $0.00/h → $0.00/h**" in text


def test_a_failed_synth_shows_its_log_and_no_stack_diff(tmp_path: Path) -> None:
    log = "\n".join(f"line {n}" for n in range(100)) + "\nerror: invalid setting epochs=0: expected an integer"
    text = render_diff.render(
        env_label="config/default.json",
        settings_before=BASE_SETTINGS,
        settings_after={**BASE_SETTINGS, "epochs": 0},
        before_dir=None,
        after_dir=tmp_path / "missing",
        synth_log=log,
        synth_status=1,
        run_cli=fake_cli([]),
    )
    assert "### Synth failed (exit status 1): no diff" in text
    assert "error: invalid setting epochs=0: expected an integer" in text
    assert "line 0\n" not in text  # the end of the log only
    assert "> **error**: config/default.json: invalid setting epochs=0" in text
    assert "### Stacks" not in text


def test_a_failed_cli_diff_is_said_and_fails_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    after = write_assembly(tmp_path / "after", {"LegalGptjTraining": machine("1"), "LegalGptjDataset": {}})
    text = render_diff.render(
        env_label="config/default.json", settings_before=BASE_SETTINGS, settings_after=BASE_SETTINGS,
        before_dir=None, after_dir=after, run_cli=fake_cli([], status=2),
    )  # fmt: skip
    assert "<code>LegalGptjDataset</code>: cdk diff failed (exit 2)" in text
    assert "<code>LegalGptjTraining</code>: cdk diff failed (exit 2)" in text
    assert "[~] something changed" in text  # what the CLI said, to see why
    # The command writes the comment and exits non-zero, so that the workflow fails after posting it.
    monkeypatch.setattr(render_diff, "cli_diff", fake_cli([], status=2))
    output = tmp_path / "comment.md"
    assert render_diff.main(["--after", str(after), "--output", str(output)]) == 1
    assert "cdk diff failed (exit 2)" in output.read_text()
    assert capsys.readouterr().err == "error: cdk diff failed for LegalGptjDataset, LegalGptjTraining\n"


def test_the_real_cli_diff_reports_its_exit_status(tmp_path: Path) -> None:
    # The pinned CLI against an assembly folder that holds no cloud assembly: it fails, and the status is kept.
    if not render_diff.CDK.exists():
        pytest.skip("run `make setup` for the pinned CLI")
    empty = tmp_path / "empty.template.json"
    empty.write_text("{}")
    result = render_diff.cli_diff("LegalGptjDataset", tmp_path / "no-assembly", empty)
    assert result.status != 0
    # The CLI itself ran (on a Node.js it starts on) and said why: a CLI that did not start fails too, without this.
    assert f"{tmp_path / 'no-assembly'}: Subprocess exited with error" in result.text, result.text


def test_a_comment_cut_at_the_limit_closes_its_fences_and_details(tmp_path: Path) -> None:
    # Each stack's diff is 2,000 lines in a fence inside <details>: the cut falls inside both.
    after = write_assembly(tmp_path / "after", {"LegalGptjTraining": {}, "LegalGptjServing": {}})

    def long_diff(stack: str, after: Path, before: Path) -> render_diff.CliDiff:
        return render_diff.CliDiff(0, "\n".join(f"[+] AWS::IAM::Policy Resource{n}" for n in range(2000)))

    text = render_diff.render(
        env_label="config/default.json", settings_before=BASE_SETTINGS, settings_after=BASE_SETTINGS,
        before_dir=None, after_dir=after, run_cli=long_diff,
    )  # fmt: skip
    assert len(text) <= render_diff.COMMENT_LIMIT + 200
    assert text.rstrip().endswith("(cut at 60,000 characters: the job's artifact has it all)")
    lines = text.splitlines()
    assert sum(line.startswith(render_diff.FENCE) for line in lines) % 2 == 0
    assert text.count("<details") == text.count("</details>") >= 1


def test_without_a_base_settings_file_the_comment_says_so(tmp_path: Path) -> None:
    after = write_assembly(tmp_path / "after", {})
    text = render_diff.render(
        env_label="config/default.json",
        settings_before=None,
        settings_after=BASE_SETTINGS,
        before_dir=None,
        after_dir=after,
        run_cli=fake_cli([]),
    )
    assert "The base branch has no such settings file." in text


def test_the_command_line_refuses_a_missing_before_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render_diff.main(["--before", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == f"error: --before {tmp_path / 'nope'}: no such folder of templates\n"


@pytest.mark.e2e
@pytest.mark.skipif(not render_diff.CDK.exists(), reason="run `make setup` for the pinned CLI")
def test_changing_epochs_shows_as_one_readable_line_through_the_pinned_cli() -> None:
    """The done-when of issue 13, offline: epochs changed in the settings, two synths, the pinned CLI's diff."""
    from tests.synth import synth

    before, after = synth(), synth(epochs=1)
    text = render_diff.render(
        env_label="config/default.json",
        settings_before=BASE_SETTINGS,
        settings_after={**BASE_SETTINGS, "epochs": 1},
        before_dir=before.outdir,
        after_dir=after.outdir,
    )
    assert "<code>LegalGptjDataset</code>: no changes" in text
    assert "<code>LegalGptjServing</code>: no changes" in text
    assert "[~] AWS::StepFunctions::StateMachine Pipeline/StateMachine" in text
    readable = text.split("DefinitionString`, pretty-printed:", 1)[1]
    changed = [line for line in readable.splitlines() if line.startswith(("+", "-"))]
    assert len(changed) == 2 and changed[0].endswith(': 3 %}",') and changed[1].endswith(': 1 %}",')


def test_a_settings_file_that_cannot_be_read_still_gets_a_comment(tmp_path: Path) -> None:
    # The synth failed on the same file: the comment says why, with the synth's log, and the command fails.
    output = tmp_path / "comment.md"
    log = tmp_path / "synth.log"
    log.write_text("error: ENV=nosuch: no settings file config/nosuch.json (committed environments: default)\n")
    argv = ["--env", "nosuch", "--after", str(tmp_path), "--synth-log", str(log), "--synth-status", "2"]
    assert render_diff.main([*argv, "--output", str(output)]) == 1
    text = output.read_text()
    assert text.startswith("## cdk diff: `config/nosuch.json`")
    assert "> **error**: ENV=nosuch: no settings file config/nosuch.json" in text
    assert "### Synth failed (exit status 2): no diff" in text
