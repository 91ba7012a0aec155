"""Settings for the operator commands, read exactly as `cdk synth` reads them: the committed file of an environment
(`config/<env>.json`, `--env`), with `C="key=value ..."` (the Makefile's) and `-c key=value` on top.

The Makefile hands `C=` over verbatim (`--C '$(C)'`), so that a word without `=` or a value with a space is refused
here with one line, instead of becoming a stray `-c` argument of the CDK CLI.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from config.environment import CONFIG_DIR, DEFAULT_ENV, ENV_KEY, Environment, layered_settings, read_environment
from config.settings import SettingError, Settings


class ContextError(ValueError):
    """Malformed `C=` or `-c`: the message is one line naming the word."""


# What reading the settings can refuse, each with a one-line message naming the setting or the file: a malformed C=
# or -c (ContextError), a bad value (SettingError), a missing or malformed settings file (SettingsFileError, a
# SettingError). The commands report these as `error: ...` (ops.errors.run_command).
SETTINGS_ERRORS: tuple[type[Exception], ...] = (ContextError, SettingError)


def parse_c(text: str) -> dict[str, str]:
    """`C="doc_count=250 use_spot=true"` as settings; words are separated by spaces, so a value cannot hold one."""
    words = text.split()
    values: dict[str, str] = {}
    for index, word in enumerate(words):
        key, sep, value = word.partition("=")
        if not sep or not key:
            previous = words[index - 1] if index else ""
            hint = (
                f": a value cannot contain a space ({previous} {word}?)"
                if "=" in previous
                else ": expected key=value, e.g. doc_count=250"
            )
            raise ContextError(f"C={text.strip()!r}: {word!r} is not key=value{hint}")
        if key in values:
            raise ContextError(f"C={text.strip()!r}: {key} is given twice")
        values[key] = value
    return values


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ContextError(f"expected -c key=value, got {pair!r}")
        overrides[key.strip()] = value
    return overrides


@dataclass(frozen=True)
class Selection:
    """An environment's committed settings and the command line's overrides on top of them."""

    environment: Environment
    overrides: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Settings:
        return layered_settings(self.environment, self.overrides)

    def committed(self) -> Settings:
        return layered_settings(self.environment, {})

    def describe(self) -> str:
        trial = " ".join(f"{k}={v}" for k, v in self.overrides.items())
        return self.environment.label + (f" with {trial}" if trial else "")

    def differences(self) -> dict[str, tuple[object, object]]:
        """Settings the overrides change: key -> (committed value, value with the overrides)."""
        committed, chosen = self.committed(), self.settings()
        return {
            key: (getattr(committed, key), getattr(chosen, key))
            for key in committed.__dataclass_fields__
            if getattr(committed, key) != getattr(chosen, key)
        }


def select(env: str | None = None, c: str = "", pairs: Sequence[str] = (), config_dir: Path = CONFIG_DIR) -> Selection:
    from_c, from_pairs = parse_c(c), parse_overrides(pairs)
    if env:
        from_pairs = {ENV_KEY: env, **from_pairs}
    for key in sorted(from_c.keys() & from_pairs.keys()):
        if from_c[key] != from_pairs[key]:
            raise ContextError(
                f"{key} is given twice: {from_c[key]!r} in C= and {from_pairs[key]!r} on the command line"
            )
    overrides = {**from_c, **from_pairs}
    name = overrides.pop(ENV_KEY, "") or DEFAULT_ENV
    return Selection(read_environment(name, config_dir), overrides)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings options every operator command shares."""
    parser.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="a setting, as for cdk"
    )
    parser.add_argument("--env", help=f"the settings file config/<ENV>.json (default: {DEFAULT_ENV})")
    parser.add_argument(
        "--C", dest="c", default="", metavar='"KEY=VALUE ..."', help="settings as the Makefile's C= gives them"
    )


def selection_from(args: argparse.Namespace) -> Selection:
    return select(args.env or None, args.c, args.context)
