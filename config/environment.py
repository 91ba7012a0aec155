"""The committed settings of a deployment: `config/<env>.json`, chosen with `ENV=` (`-c env=<name>`).

A deployment is what its file says, so a pull request that changes the file shows what will be deployed. Command-line
context (`C="key=value ..."`, each becoming `-c key=value`) is layered on top for one-off trials of synth and cost;
`make deploy` refuses such a trial unless it is made explicit (ops/cdk.py). The code's defaults fill in every key a
file leaves out.

Errors are one line naming the file (or the environment) and what was expected; values and keys are checked by
`Settings` exactly as for `-c` (config/settings.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from config.settings import SettingError, Settings, is_cdk_key, known_setting, load_settings

CONFIG_DIR = Path(__file__).resolve().parent
ROOT = CONFIG_DIR.parent
# The context key that names the environment; not a setting, so the settings never see it.
ENV_KEY = "env"
DEFAULT_ENV = "default"
_ENV_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


class SettingsFileError(SettingError):
    """A settings file is missing or malformed, or names a key in the wrong place. The message is one line."""

    def __init__(self, message: str, key: str = "") -> None:
        ValueError.__init__(self, message)
        self.key = key


@dataclass(frozen=True)
class Environment:
    name: str
    path: Path
    values: dict[str, object]  # as written in the file

    @property
    def label(self) -> str:
        return _relative(self.path)


def environments(config_dir: Path = CONFIG_DIR) -> list[str]:
    """The committed environments: every `config/<env>.json`."""
    return sorted(p.stem for p in config_dir.glob("*.json") if _ENV_NAME.fullmatch(p.stem))


def settings_path(env: str, config_dir: Path = CONFIG_DIR) -> Path:
    if not _ENV_NAME.fullmatch(env):
        raise SettingsFileError(
            f"invalid environment ENV={env!r}: expected lowercase letters, digits and hyphens "
            f"(the name of a file config/<env>.json)"
        )
    path = config_dir / f"{env}.json"
    if not path.is_file():
        committed = ", ".join(environments(config_dir)) or "none"
        raise SettingsFileError(f"ENV={env}: no settings file {_relative(path)} (committed environments: {committed})")
    return path


def read_environment(env: str = DEFAULT_ENV, config_dir: Path = CONFIG_DIR) -> Environment:
    path = settings_path(env, config_dir)
    return Environment(env, path, read_settings_file(path))


def read_settings_file(path: Path) -> dict[str, object]:
    """The file's settings, unvalidated but for their shape: a JSON object of known setting keys."""
    label = _relative(path)
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SettingsFileError(f"{label}: not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise SettingsFileError(f"{label}: expected a JSON object of settings, got {type(values).__name__}")
    for key, value in values.items():
        if is_cdk_key(key) or key == ENV_KEY:
            raise SettingsFileError(f"{label}: {key} is not a setting (CDK feature flags belong in cdk.json)", key)
        if not known_setting(key):
            raise SettingsFileError(f"{label}: {SettingError(key, value, '', unknown=True)}", key)
    return dict(values)


def check_cdk_json(path: Path = ROOT / "cdk.json") -> None:
    """Settings in cdk.json's context would override every environment's file: refuse them, naming the key."""
    context = json.loads(path.read_text()).get("context", {})
    for key in context:
        if known_setting(key):
            raise SettingsFileError(
                f"cdk.json: {key} is a setting: it belongs in config/<env>.json, not in cdk.json's context", key
            )


def load_environment(context: Mapping[str, object], config_dir: Path = CONFIG_DIR) -> Settings:
    """Settings as the app synthesizes them: the environment's file, then the command line's context on top."""
    env = str(context.get(ENV_KEY) or DEFAULT_ENV)
    environment = read_environment(env, config_dir)
    overrides = {k: v for k, v in context.items() if k != ENV_KEY}
    return layered_settings(environment, overrides)


def layered_settings(environment: Environment, overrides: Mapping[str, object]) -> Settings:
    """The file's values under the overrides; a bad value from the file is reported as the file's."""
    try:
        return load_settings({**environment.values, **overrides})
    except SettingError as error:
        # A key the command line did not set is the file's to fix, whether it says a bad value or nothing.
        if error.key not in overrides and not isinstance(error, SettingsFileError):
            raise SettingsFileError(f"{environment.label}: {error}", error.key) from None
        raise


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
