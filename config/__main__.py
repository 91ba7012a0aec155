"""`python -m config --markdown` prints the README's configuration table from the settings' own metadata.

`python -m config --check [ENV]` checks the committed settings files (all of them, or one): one line per file.
"""

from __future__ import annotations

import sys

from config.environment import environments, load_environment
from config.settings import SettingError, settings_table

GROUP_TITLES = {"general": "General", "dataset": "Dataset", "training": "Training", "serving": "Serving"}


def markdown_table() -> str:
    """The code's defaults: what a settings file gets for every key it leaves out."""
    lines = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for group, title in GROUP_TITLES.items():
        lines.append(f"| **{title}** | | | |")
        lines += [
            "| `{key}` | `{default}` | {allowed} | {meaning} |".format(**row)
            for row in settings_table()
            if row["group"] == group
        ]
    return "\n".join(lines)


def check(names: list[str]) -> int:
    failed = 0
    for name in names or environments():
        try:
            load_environment({"env": name})
        except SettingError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
        else:
            print(f"config/{name}.json: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown_table())
    elif sys.argv[1:2] == ["--check"]:
        sys.exit(check(sys.argv[2:]))
    else:
        sys.exit("usage: python -m config --markdown | --check [ENV ...]")
