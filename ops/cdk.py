"""`make synth|deploy|diff|destroy|bootstrap`: the pinned CDK CLI on an environment's committed settings.

    python -m ops.cdk deploy [--env ENV] [--C "key=value ..."] [--trial] [--skip-preflight] -- --all [cdk arguments]

Every command gets `-c env=<ENV>` (config/<ENV>.json) and one `-c key=value` per word of `C=`, checked first
(ops/context.py). A `-c`/`--context` pair among the CLI's own arguments (the Makefile's ARGS) is a setting too: it is
read and checked with C=, so that it cannot reach the CLI unseen. `deploy` deploys the committed file: settings that
change it are refused with what they would change, unless `--trial` (the Makefile's TRIAL=1) says that deploying
something uncommitted is meant; then, before anything is spent, the preflight (ops/preflight.py) checks the account
for those same settings, unless `--skip-preflight` (SKIP_PREFLIGHT=1).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ops.aws import ClientFactory, Clients
from ops.context import SETTINGS_ERRORS, ContextError, Selection, add_arguments, select
from ops.errors import OperatorError, run_command

ROOT = Path(__file__).resolve().parents[1]
CDK = ROOT / "node_modules" / ".bin" / "cdk"
COMMANDS = ("synth", "deploy", "diff", "destroy", "bootstrap")
CONTEXT_OPTIONS = ("-c", "--context")

Exec = Callable[[str, list[str]], None]


def split_context(cli_arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the `key=value` of every -c/--context, the other arguments) of the CDK CLI's arguments, in every form the
    CLI's parser takes: `-c k=v`, `--context k=v`, `--context=k=v`, `-c=k=v`, `-ck=v`."""
    pairs: list[str] = []
    others: list[str] = []
    words = iter(cli_arguments)
    for word in words:
        if word in CONTEXT_OPTIONS:
            value = next(words, None)
            if value is None:
                raise ContextError(f"{word} at the end of ARGS: expected {word} key=value")
            pairs.append(value)
        elif word.startswith("--context="):
            pairs.append(word.removeprefix("--context="))
        elif word.startswith("-c") and not word.startswith("--"):  # no other short option of the CLI starts so
            pairs.append(word[2:].removeprefix("="))
        else:
            others.append(word)
    return pairs, others


def cdk_arguments(command: str, selection: Selection, rest: Sequence[str]) -> list[str]:
    context = [f"env={selection.environment.name}", *(f"{k}={v}" for k, v in selection.overrides.items())]
    return [str(CDK), command, *(arg for pair in context for arg in ("-c", pair)), *rest]


def trial_refusal(selection: Selection, given: str = "C=") -> str | None:
    """Why `deploy` refuses these overrides (`given`: where they came from), or None when they change nothing the
    file says."""
    changes = selection.differences()
    if not changes:
        return None
    listed = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
    return (
        f"{given} changes what {selection.environment.label} deploys ({listed}): change the file (and commit it), "
        "or deploy this trial on purpose with TRIAL=1"
    )


def _given(c: str, pairs: Sequence[str]) -> str:
    sources = [name for name, present in (("C=", c.strip()), ("-c", pairs)) if present]
    return " and ".join(sources) or "C="


def run(args: argparse.Namespace, rest: Sequence[str], execute: Exec, clients: ClientFactory | None) -> int:
    # Everything after "--" is the CDK CLI's, but for its -c pairs, which are settings (see the docstring).
    cli_pairs, rest = split_context(rest)
    pairs = [*args.context, *cli_pairs]
    selection = select(args.env or None, args.c, pairs)
    if args.command == "deploy":
        # The refusal comes first: a trial that is refused must not call AWS (nor fail on missing credentials).
        refusal = trial_refusal(selection, _given(args.c, pairs))
        if refusal and not args.trial:
            raise OperatorError(refusal)
        if refusal:
            print(f"note: deploying a trial, not {selection.environment.label} as committed", file=sys.stderr)
        if args.skip_preflight:
            print("preflight skipped (SKIP_PREFLIGHT=1)", file=sys.stderr)
        else:
            from ops import preflight  # imports the CDK's construct library: only deploy needs it

            settings = selection.settings()
            passed = preflight.check(
                settings,
                scope="deploy",
                region=settings.region,  # where cdk deploy puts the stacks: the app's env is the settings' region
                clients=clients or Clients(),
                qualifier=preflight.qualifier_of(selection),
            )
            if not passed:
                return 1
    arguments = cdk_arguments(args.command, selection, rest)
    sys.stdout.flush()
    execute(arguments[0], arguments)
    return 0


def main(argv: Sequence[str] | None = None, *, execute: Exec = os.execv, clients: ClientFactory | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.cdk", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=COMMANDS)
    add_arguments(parser)
    parser.add_argument("--trial", action="store_true", help="deploy settings that differ from the file (TRIAL=1)")
    parser.add_argument(
        "--skip-preflight", action="store_true", help="deploy without the preflight's checks (SKIP_PREFLIGHT=1)"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is the CDK CLI's (argparse would read its options as ours).
    own, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    return run_command(lambda: run(args, rest, execute, clients), expected=SETTINGS_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
