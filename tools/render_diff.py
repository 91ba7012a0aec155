"""The pull-request comment: settings that differ from the defaults, the cost before and after, and `cdk diff` of
each stack once, with the state machine definition and other long JSON strings as readable line-by-line diffs.

    python -m tools.render_diff --before BEFORE_DIR --after cdk.out [--settings-before base.json] [--env ENV]
        [--synth-log synth.log --synth-status N] [--output comment.md]

BEFORE_DIR holds `<stack>.template.json` of what the pull request changes: the deployed stacks' templates (the
pull-request workflow fetches them with a read-only role) or a synthesized baseline (`make synth OUT=/tmp/base`
before the change; `make review BEFORE=/tmp/base` renders this offline). A stack missing there is new. Each stack is
diffed by the pinned CDK CLI against that template (`cdk diff --exclusively --template`, no AWS call); the CLI prints
a changed long string as one line each side, so those lines are shortened and the strings' pretty-printed forms are
diffed here instead (a new or removed stack's or resource's strings whole, as added or removed lines). With a failed
synth (--synth-status other than 0) the comment shows the settings, the cost and the end of the synth's log. A stack
whose CLI diff fails says "cdk diff failed (exit N)" with what the CLI said, and the command exits 1 once the comment
is written. A comment longer than GitHub takes is cut at a line, its open code block and sections closed.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import itertools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.errors import OperatorError, run_command

if TYPE_CHECKING:  # at run time imported where used: config imports the CDK, whose Node.js main() chooses first
    from config import Settings

ROOT = Path(__file__).resolve().parents[1]
CDK = ROOT / "node_modules" / ".bin" / "cdk"
# A string this long is diffed in its pretty-printed form; a CLI line this long is shortened.
LONG_STRING = 200
LONG_LINE = 300
SYNTH_LOG_LINES = 60
# GitHub refuses a comment over 65,536 characters; the rest goes to the job's artifact.
COMMENT_LIMIT = 60_000
FENCE = "```"


@dataclass(frozen=True)
class StringDiff:
    path: str
    lines: list[str]  # unified diff of the pretty-printed forms, without the file header


# --- long strings -------------------------------------------------------------------------------------------------


def _token(value: Mapping[str, Any]) -> str:
    """An intrinsic inside a joined string, as a placeholder that keeps the surrounding JSON valid (no quotes)."""
    (name, argument), *_ = value.items()
    if name == "Ref":
        return f"${{{argument}}}"
    if name == "Fn::GetAtt":
        return "${" + ".".join(argument if isinstance(argument, list) else [str(argument)]) + "}"
    if name == "Fn::GetStackOutput" and isinstance(argument, Mapping):
        return f"${{{argument.get('StackName')}.{argument.get('OutputName')}}}"
    return "${" + name + "}"


def as_text(value: Any) -> str | None:
    """A string, or an `Fn::Join` of strings and intrinsics, as one text; None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and list(value) == ["Fn::Join"]:
        separator, parts = value["Fn::Join"]
        if isinstance(separator, str) and isinstance(parts, list):
            return separator.join(p if isinstance(p, str) else _token(p) for p in parts if isinstance(p, str | dict))
    return None


def pretty(text: str) -> list[str]:
    """JSON pretty-printed with two-space indents; text that is not JSON is split at its structure instead."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False).splitlines()
    except ValueError:
        return _structural_lines(text)


def _structural_lines(text: str) -> list[str]:
    """A line per member of JSON-like text (a placeholder outside a string makes it invalid JSON)."""
    lines: list[str] = []
    current, depth, in_string, escaped = "", 0, False, False

    def newline() -> None:
        nonlocal current
        if current.strip():
            lines.append("  " * max(depth, 0) + current.strip())
        current = ""

    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if in_string:
            current += char
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            current += char
        elif char == "$" and text[index : index + 1] == "{":  # a placeholder (_token) is one word
            end = text.find("}", index)
            end = len(text) - 1 if end < 0 else end
            current += text[index - 1 : end + 1]
            index = end + 1
        elif char in "{[":
            current += char
            newline()
            depth += 1
        elif char in "}]":
            newline()
            depth -= 1
            current = char
        elif char == ",":
            current += char
            newline()
        else:
            current += char
    newline()
    return lines


def string_diffs(before: Any, after: Any, path: str = "") -> Iterator[StringDiff]:
    """Every long string (or joined string) that differs between two templates, pretty-printed and diffed. A part on
    one side only (a new stack or resource, a removed one) is compared with nothing: its long strings come out whole,
    as added or removed lines, since the CLI's line for them is cut and they are shown nowhere else."""
    if before == after:
        return
    old, new = as_text(before), as_text(after)
    if (old is not None or new is not None) and max(len(old or ""), len(new or "")) >= LONG_STRING:
        diff = difflib.unified_diff(pretty(old or ""), pretty(new or ""), lineterm="", n=3)
        yield StringDiff(path, [line for line in diff if not line.startswith(("---", "+++"))])
        return
    if isinstance(before, Mapping) or isinstance(after, Mapping):
        old_map = before if isinstance(before, Mapping) else {}
        new_map = after if isinstance(after, Mapping) else {}
        for key in sorted(set(old_map) | set(new_map)):
            yield from string_diffs(old_map.get(key), new_map.get(key), f"{path}.{key}" if path else key)
    elif isinstance(before, list) or isinstance(after, list):
        old_list = before if isinstance(before, list) else []
        new_list = after if isinstance(after, list) else []
        for index, (old_item, new_item) in enumerate(itertools.zip_longest(old_list, new_list)):
            yield from string_diffs(old_item, new_item, f"{path}[{index}]")


def shorten_long_lines(cli_output: str, limit: int = LONG_LINE) -> str:
    """The CLI's diff with each over-long line cut: the readable form of such a string follows it."""
    lines = []
    for line in cli_output.splitlines():
        if len(line) > limit:
            line = f"{line[: limit // 2]}… ({len(line):,} characters: pretty-printed diff below)"
        lines.append(line)
    return "\n".join(lines)


# --- settings and cost --------------------------------------------------------------------------------------------


def _code_defaults() -> dict[str, object]:
    from config import Settings

    return {f.name: f.default for f in dataclasses.fields(Settings)}


def settings_rows(before: Mapping[str, object] | None, after: Mapping[str, object]) -> list[tuple[str, str, str, str]]:
    """(key, default, before, after) for every setting that differs from its default on either side."""
    from config import settings_table

    shown_defaults = {row["key"]: row["default"] for row in settings_table()}
    rows = []
    for key, default in _code_defaults().items():
        old = _value(key, before.get(key, default)) if before is not None else None
        new = _value(key, after.get(key, default))
        if new != default or (before is not None and old != default):
            rows.append((key, shown_defaults[key], "-" if before is None else _show(old), _show(new)))
    return rows


def _value(key: str, raw: object) -> object:
    """The value as the app reads it (`"false"` is `false`), so that only a real difference is shown; one the app
    would refuse is shown as written (the synth of that side fails and says why)."""
    from config.settings import SettingError, coerce_setting

    try:
        return coerce_setting(key, raw)
    except SettingError:
        return raw


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "(empty)" if value == "" else str(value)


def settings_section(label: str, before: Mapping[str, object] | None, after: Mapping[str, object]) -> list[str]:
    rows = settings_rows(before, after)
    lines = [f"### Settings ({label}) that differ from the defaults", ""]
    if not rows:
        return [*lines, "None: every setting has its default.", ""]
    lines += ["| setting | default | base branch | this pull request |", "| --- | --- | --- | --- |"]
    for key, default, old, new in rows:
        changed = before is not None and old != new
        mark = "**" if changed else ""
        lines.append(f"| {mark}`{key}`{mark} | `{default}` | `{old}` | {mark}`{new}`{mark} |")
    if before is None:
        lines.append("")
        lines.append("The base branch has no such settings file.")
    return [*lines, ""]


def cost_section(before: Settings | None, after: Settings | None) -> list[str]:
    """`make cost` of the base branch's settings and of this pull request's (Settings, or None when unknown)."""
    from ops.cost import estimate_lines

    lines = ["### Cost before and after", ""]
    if before is not None and after is not None:
        lines += [headline(before, after), ""]
    for title, settings in (("base branch", before), ("this pull request", after)):
        lines.append(f"{title}:")
        lines.append(FENCE)
        lines += estimate_lines(settings, label=title) if settings is not None else ["(no settings: no estimate)"]
        lines += [FENCE, ""]
    return lines


def headline(before: Settings, after: Settings) -> str:
    """The two numbers a reviewer compares first: the training run on demand, the endpoints per hour."""
    from ops.cost import endpoint_hourly, load_prices, measured_throughputs, training_on_demand

    prices, throughputs = load_prices(), measured_throughputs()

    def money(value: float | None, unit: str = "") -> str:
        return "unknown" if value is None else f"${value:,.2f}{unit}" if unit else f"${value:,.0f}"

    runs = [training_on_demand(s, prices, throughputs) for s in (before, after)]
    hourly = [endpoint_hourly(s, prices) for s in (before, after)]
    return (
        f"**Training run, on demand: {money(runs[0])} → {money(runs[1])}; "
        f"endpoints at minimum capacity: {money(hourly[0], '/h')} → {money(hourly[1], '/h')}**"
    )


def _load(values: Mapping[str, object] | None, label: str) -> tuple[Settings | None, str | None]:
    """Settings from a file's values, or the one-line reason they cannot be loaded."""
    if values is None:
        return None, None
    from config import SettingError, load_settings

    try:
        return load_settings(values), None
    except SettingError as error:
        return None, f"{label}: {error}"


# --- stacks -------------------------------------------------------------------------------------------------------


def templates(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in sorted(directory.glob("*.template.json"))
    }


@dataclass(frozen=True)
class CliDiff:
    """What the CLI said, and its exit status (0: it diffed; the CLI exits 0 with or without differences)."""

    status: int
    text: str


# (stack, synthesized assembly, template to diff against) -> what the CLI said: cli_diff, or the tests' stand-in.
CliRunner = Callable[[str, Path, Path], CliDiff]


def cli_diff(stack: str, after: Path, before_template: Path) -> CliDiff:
    """The pinned CDK CLI's diff of one stack (and only it) of a synthesized assembly against a template file, on
    the Node.js that main() put first on PATH."""
    result = subprocess.run(
        [
            *(str(CDK), "diff", "--app", str(after), "--exclusively", stack),
            *("--template", str(before_template), "--no-color", "--notices=false"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    # The CLI writes its diff to stderr unless CI=true; keep both, in its order of importance.
    return CliDiff(
        result.returncode, "\n".join(part for part in (result.stdout.strip(), result.stderr.strip()) if part)
    )


def stack_sections(
    before_dir: Path | None, after_dir: Path, *, run_cli: CliRunner | None = None, failed: list[str] | None = None
) -> list[str]:
    """Each stack's section; the stacks whose CLI diff failed are appended to `failed`."""
    before = templates(before_dir) if before_dir else {}
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        empty = Path(scratch) / "empty.template.json"
        empty.write_text("{}")
        for stack, template in templates(after_dir).items():
            base = before_dir / f"{stack}.template.json" if before_dir and stack in before else empty
            cli = (run_cli or cli_diff)(stack, after_dir, base)
            diffs = list(string_diffs(before.get(stack, {}), template))
            unchanged = "no differences" in cli.text.lower()  # the CLI: "There were no differences"
            if cli.status:
                status = f"cdk diff failed (exit {cli.status})"
                if failed is not None:
                    failed.append(stack)
            elif unchanged and not diffs:
                status = "no changes"
            else:
                status = "new stack" if stack not in before else "changed"
            lines += [f"<details{' open' if status != 'no changes' else ''}><summary><code>{stack}</code>: {status}"]
            lines += ["</summary>", "", f"{FENCE}diff", _fenced(shorten_long_lines(cli.text)), FENCE]
            for diff in diffs:
                lines += ["", f"`{diff.path}`, pretty-printed:", "", f"{FENCE}diff", *map(_fenced, diff.lines), FENCE]
            lines += ["</details>", ""]
    return lines


def cut(text: str, limit: int = COMMENT_LIMIT) -> str:
    """`text`, or its first lines up to `limit` characters with the fence and the <details> blocks still open there
    closed, so that what follows the cut renders as text, not as part of a code block or a folded section."""
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size, fence_open, details_open = 0, False, 0
    for line in text.splitlines():
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
        if line.startswith(FENCE):
            fence_open = not fence_open
        details_open += line.count("<details") - line.count("</details>")
    closing = ([FENCE] if fence_open else []) + ["</details>"] * max(details_open, 0)
    return "\n".join([*kept, *closing, "", f"(cut at {limit:,} characters: the job's artifact has it all)", ""])


def _fenced(text: str) -> str:
    return text.replace(FENCE, "` ` `")


# --- the comment --------------------------------------------------------------------------------------------------


def render(
    *,
    env_label: str,
    settings_before: Mapping[str, object] | None,
    settings_after: Mapping[str, object] | None,
    before_dir: Path | None,
    after_dir: Path,
    synth_log: str = "",
    synth_status: int = 0,
    title: str = "cdk diff",
    run_cli: CliRunner | None = None,
    failed: list[str] | None = None,
    settings_error: str = "",
) -> str:
    """The comment. `settings_after` None: the settings file could not be read (`settings_error` says why); the
    comment then says so instead of a settings table, and the synth (which read the same file) has failed."""
    base, base_error = _load(settings_before, "base branch")
    head, head_error = _load(settings_after, env_label)
    lines = [f"## {title}: `{env_label}`", ""]
    lines += [f"> **error**: {e}" for e in (base_error, settings_error or head_error) if e]
    if settings_after is not None:
        lines += settings_section(env_label, settings_before, settings_after)
    lines += cost_section(base, head)
    if synth_status:
        tail = synth_log.strip().splitlines()[-SYNTH_LOG_LINES:]
        lines += [f"### Synth failed (exit status {synth_status}): no diff", "", FENCE, *map(_fenced, tail), FENCE, ""]
    else:
        against = "the templates in the before folder" if before_dir else "nothing (every stack is new)"
        lines += [f"### Stacks, each diffed once against {against}", ""]
        lines += stack_sections(before_dir, after_dir, run_cli=run_cli, failed=failed)
    return cut("\n".join(lines))


def _read_json(path: Path | None) -> dict[str, object] | None:
    if path is None or not path.is_file():
        return None
    values = json.loads(path.read_text())
    return dict(values) if isinstance(values, dict) else None


def main(argv: list[str] | None = None) -> int:
    # jsii (the settings import the CDK) runs Node.js from PATH: the virtualenv's Node 24, as in app.py.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    from config.environment import DEFAULT_ENV

    parser = argparse.ArgumentParser(prog="python -m tools.render_diff", description=__doc__.splitlines()[0])
    parser.add_argument("--after", type=Path, default=ROOT / "cdk.out", help="the synthesized assembly (cdk.out)")
    parser.add_argument("--before", type=Path, help="templates to compare against (deployed or a baseline synth)")
    parser.add_argument("--env", default=DEFAULT_ENV, help="the settings file config/<ENV>.json of this change")
    parser.add_argument("--settings-before", type=Path, help="the base branch's settings file (absent: none)")
    parser.add_argument("--synth-log", type=Path, help="the synth's output, shown when it failed")
    parser.add_argument("--synth-status", type=int, default=0, help="the synth's exit status")
    parser.add_argument("--title", default="cdk diff")
    parser.add_argument("--output", type=Path, help="write the comment here (default: stdout)")
    args = parser.parse_args(argv)
    return run_command(lambda: run(args), expected=(OperatorError,))


def run(args: argparse.Namespace) -> int:
    """Write the comment; 1 when a stack's diff failed (after writing it, so that it can still be posted)."""
    from config.environment import read_environment
    from config.settings import SettingError

    if args.before is not None and not args.before.is_dir():
        raise OperatorError(f"--before {args.before}: no such folder of templates")
    # A settings file that cannot be read fails the synth as well: the comment must still come, saying why.
    settings_error = ""
    label, values = f"config/{args.env}.json", None
    try:
        environment = read_environment(args.env)
        label, values = environment.label, environment.values
    except SettingError as error:
        settings_error = str(error)
    failed: list[str] = []
    text = render(
        env_label=label,
        settings_before=_read_json(args.settings_before),
        settings_after=values,
        settings_error=settings_error,
        before_dir=args.before,
        after_dir=args.after,
        synth_log=args.synth_log.read_text() if args.synth_log and args.synth_log.is_file() else "",
        synth_status=args.synth_status,
        title=args.title,
        failed=failed,
    )
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    if settings_error:
        print(f"error: {settings_error}", file=sys.stderr)
        return 1
    if failed:
        print(f"error: cdk diff failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
