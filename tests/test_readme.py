"""The README's configuration table is the one the settings generate: no key undocumented, no stale default."""

from __future__ import annotations

import json
import re

from config import load_settings
from config.__main__ import markdown_table
from tests.synth import ROOT


def test_readme_configuration_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", readme, re.DOTALL)
    assert found, "README.md lost its settings-table markers"
    assert found.group(1) == markdown_table(), "regenerate it: python -m config --markdown"


def test_readme_shows_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make synth" in readme and "make test" in readme


def test_readme_shows_the_settings_file_before_how_to_deploy() -> None:
    readme = (ROOT / "README.md").read_text()
    settings_file = readme.index("## The deployment is a committed file")
    assert settings_file < readme.index("## Deploying, reviewing, destroying")
    example = re.search(r"```json\n(.*?)\n```", readme[settings_file:], re.DOTALL)
    assert example, "the settings file's example is gone"
    values = json.loads(example.group(1))
    assert load_settings(values).region == values["region"]  # an example that loads, as the app would load it
