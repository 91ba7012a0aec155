"""`make synth|deploy|diff|destroy|bootstrap`: the pinned CDK CLI on an environment's committed settings.

    python -m ops.cdk deploy [--env ENV] [--C "key=value ..."] [--trial] -- --all [more cdk arguments]

Every command gets `-c env=<ENV>` (config/<ENV>.json) and one `-c key=value` per word of `C=`, checked first
(ops/context.py). `deploy` deploys the committed file: a `C=` that changes a setting is refused with the settings it
would change, unless `--trial` (the Makefile's TRIAL=1) says that deploying something uncommitted is meant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ops.context import Selection, add_arguments, selection_from

ROOT = Path(__file__).resolve().parents[1]
CDK = ROOT / "node_modules" / ".bin" / "cdk"
COMMANDS = ("synth", "deploy", "diff", "destroy", "bootstrap")

Exec = Callable[[str, list[str]], None]


def cdk_arguments(command: str, selection: Selection, rest: Sequence[str]) -> list[str]:
    context = [f"env={selection.environment.name}", *(f"{k}={v}" for k, v in selection.overrides.items())]
    return [str(CDK), command, *(arg for pair in context for arg in ("-c", pair)), *rest]


def trial_refusal(selection: Selection) -> str | None:
    """Why `deploy` refuses these overrides, or None when they change nothing the file says."""
    changes = selection.differences()
    if not changes:
        return None
    listed = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
    return (
        f"C= changes what {selection.environment.label} deploys ({listed}): change the file (and commit it), "
        "or deploy this trial on purpose with TRIAL=1"
    )


def main(argv: Sequence[str] | None = None, *, execute: Exec = os.execv) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.cdk", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=COMMANDS)
    add_arguments(parser)
    parser.add_argument("--trial", action="store_true", help="deploy settings that differ from the file (TRIAL=1)")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is the CDK CLI's, untouched (argparse would read its options as ours).
    own, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    try:
        selection = selection_from(args)
        if args.command == "deploy":
            refusal = trial_refusal(selection)
            if refusal and not args.trial:
                print(f"error: {refusal}", file=sys.stderr)
                return 1
            if refusal:
                print(f"note: deploying a trial, not {selection.environment.label} as committed", file=sys.stderr)
    except ValueError as error:  # a malformed C= or -c, a missing or bad settings file, a bad value (SettingError)
        print(f"error: {error}", file=sys.stderr)
        return 1
    arguments = cdk_arguments(args.command, selection, rest)
    sys.stdout.flush()
    execute(arguments[0], arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
