"""The README shows what the code does: the configuration table the settings generate (no key undocumented, no stale
default), a settings file that loads, and the `make cost` output of that file."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from config import Settings, load_settings
from config.__main__ import markdown_table
from ops import cost
from tests.synth import ROOT

README = ROOT / "README.md"


def settings_file_example() -> dict[str, Any]:
    """The JSON example of "## The deployment is a committed file"."""
    readme = README.read_text()
    section = readme.index("## The deployment is a committed file")
    example = re.search(r"```json\n(.*?)\n```", readme[section:], re.DOTALL)
    assert example, "the settings file's example is gone"
    values: dict[str, Any] = json.loads(example.group(1))
    return values


def test_readme_configuration_table_is_current() -> None:
    readme = README.read_text()
    found = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", readme, re.DOTALL)
    assert found, "README.md lost its settings-table markers"
    assert found.group(1) == markdown_table(), "regenerate it: python -m config --markdown"


def test_readme_shows_the_two_setup_commands() -> None:
    readme = README.read_text()
    assert "make synth" in readme and "make test" in readme


def test_readme_shows_the_settings_file_before_how_to_deploy() -> None:
    readme = README.read_text()
    assert readme.index("## The deployment is a committed file") < readme.index("## Deploying, reviewing, destroying")
    values = settings_file_example()
    assert load_settings(values).region == values["region"]  # an example that loads, as the app would load it
    # "As first committed it holds those defaults": every key but the region, which has none, at its default.
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert {key: value for key, value in values.items() if key != "region"} == {
        key: defaults[key] for key in values if key != "region"
    }


def test_readme_cost_example_is_what_make_cost_prints_for_that_file() -> None:
    """The example of `make cost` against the estimate of the settings file shown, with the committed prices and
    throughput table: each line as printed, "..." standing for what the README leaves out."""
    block = re.search(r"```\n(Cost estimate for config/default\.json .*?)\n```", README.read_text(), re.DOTALL)
    assert block, "the make cost example is gone"
    printed = cost.report(
        load_settings(settings_file_example()),
        cost.load_prices(),
        cost.measured_throughputs(),
        label="config/default.json",
    )
    shown = block.group(1).splitlines()
    assert len(shown) == len(printed), printed
    for line, actual in zip(shown, printed, strict=True):
        assert re.fullmatch(".*?".join(map(re.escape, line.split("..."))), actual), (line, actual)
