"""`python -m config --markdown` prints the README's configuration table from the settings' own metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from config.settings import settings_table

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"

GROUP_TITLES = {"general": "General", "dataset": "Dataset", "training": "Training", "serving": "Serving"}


def markdown_table() -> str:
    """Defaults as a fresh checkout synthesizes them: cdk.json's context wins over the code's default."""
    project_defaults = json.loads(CDK_JSON.read_text())["context"]
    lines = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for group, title in GROUP_TITLES.items():
        lines.append(f"| **{title}** | | | |")
        lines += [
            "| `{key}` | `{default}` | {allowed} | {meaning} |".format(
                **{**row, "default": _default(row["key"], row["default"], project_defaults)}
            )
            for row in settings_table()
            if row["group"] == group
        ]
    return "\n".join(lines)


def _default(key: str, code_default: str, project_defaults: dict[str, object]) -> str:
    return str(project_defaults[key]) if key in project_defaults else code_default


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m config --markdown")
    print(markdown_table())
