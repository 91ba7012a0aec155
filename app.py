#!/usr/bin/env python3
"""CDK entry point: the committed settings (config/<env>.json, `-c env=<name>`) with `-c` overrides on top, then the
stacks. A bad setting stops synth with one line naming it (and its file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# jsii runs Node.js from PATH: put the virtualenv's Node 24 first, never the system's end-of-life Node 20.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

import aws_cdk as cdk

from config import SettingError
from config.environment import check_cdk_json, load_environment
from stacks.app_builder import build_pipeline


def main() -> int:
    app = cdk.App()
    try:
        # Some checks need facts the stacks derive (e.g. whether an instance type can hold the model), so building
        # the stacks can reject a setting too; either way the operator sees one line.
        check_cdk_json()
        build_pipeline(app, load_environment(app.node.get_all_context()))
    except SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
