"""`make invoke PROMPT="..."`: ask the GPT-J endpoints to continue a prompt, the way the original notebook did.

    python -m ops.invoke --prompt "His Honour Judge Richards:"                 # the fine-tuned endpoint (or base)
    python -m ops.invoke --prompt "..." --endpoint base --max-length 300
    python -m ops.invoke --prompt "..." --compare                              # base and fine-tuned, one after other

The endpoints' names come from the serving stack's outputs in the region of the deployment's settings file
(config/<ENV>.json, `--env`; the Makefile's ENV=), or --region; `--endpoint NAME` calls any endpoint by name. The
notebook's parameters are translated to the LMI container's schema by `ops.lmi_request` (see its docstring).
Errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config.environment import DEFAULT_ENV, SettingsFileError, read_environment
from config.settings import SettingError
from ops.errors import run_command
from ops.lmi_request import Generation, RequestError, lmi_requests
from ops.runtime import OUTPUT_KEYS, Clients, check_serving, deployed_endpoints, invoke, resolve

# The notebook printed its documents separated by a line of 65 dashes; so are several sequences here.
SEPARATOR = "-" * 65


def settings_region(env: str | None) -> str:
    """The region of the deployment's committed settings file, config/<ENV>.json, where its endpoints are."""
    environment = read_environment(env or DEFAULT_ENV)
    region = environment.values.get("region")
    if not isinstance(region, str) or not region:
        raise SettingsFileError(f"{environment.label}: no region: set region there, or pass --region")
    return region


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Generation(text_inputs="-")
    parser = argparse.ArgumentParser(prog="python -m ops.invoke", description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", required=True, help="the text to continue (the notebook's text_inputs)")
    parser.add_argument(
        "--endpoint",
        help="base, fine-tuned, or an endpoint's name (default: fine-tuned if deployed, else base)",
    )
    parser.add_argument("--compare", action="store_true", help="ask the base and the fine-tuned endpoint")
    parser.add_argument("--max-length", type=int, default=defaults.max_length, help="prompt + generated tokens")
    parser.add_argument("--max-new-tokens", type=int, help="generated tokens (instead of --max-length)")
    parser.add_argument("--num-return-sequences", type=int, default=defaults.num_return_sequences)
    parser.add_argument("--top-k", type=int, default=defaults.top_k)
    parser.add_argument("--top-p", type=float, default=defaults.top_p)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=defaults.do_sample)
    parser.add_argument(
        "--full-text",
        action=argparse.BooleanOptionalAction,
        default=defaults.return_full_text,
        help="print the prompt before the generation, as the notebook did",
    )
    parser.add_argument("--env", help=f"the deployment's settings file config/<ENV>.json (default: {DEFAULT_ENV})")
    parser.add_argument("--region", help="default: the region of the settings file (config/<ENV>.json)")
    parser.add_argument("--endpoint-url", help="send every AWS call to this address instead (testing, proxies)")
    args = parser.parse_args(argv)
    if args.compare and args.endpoint:
        parser.error("--compare asks both endpoints: leave out --endpoint")
    return args


def targets(args: argparse.Namespace, clients: Clients) -> list[tuple[str, str]]:
    """(label, endpoint name) pairs to ask, in order."""
    if args.endpoint and args.endpoint not in OUTPUT_KEYS:
        return [(args.endpoint, args.endpoint)]
    deployed = deployed_endpoints(clients)
    if args.compare:
        return [resolve(label, deployed) for label in OUTPUT_KEYS]
    return [resolve(args.endpoint, deployed)]


def ask(args: argparse.Namespace) -> int:
    generation = Generation(
        text_inputs=args.prompt,
        max_length=args.max_length,
        max_new_tokens=args.max_new_tokens,
        num_return_sequences=args.num_return_sequences,
        top_k=args.top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        do_sample=args.do_sample,
        return_full_text=args.full_text,
    )
    clients = Clients.create(args.region or settings_region(args.env), args.endpoint_url)
    chosen = targets(args, clients)
    for _, name in chosen:
        warning = check_serving(clients, name)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    answers = [
        (label, name, [text for body in lmi_requests(generation) for text in invoke(clients, name, body)])
        for label, name in chosen
    ]
    for index, (label, name, texts) in enumerate(answers):
        if len(answers) > 1:
            if index:
                print()
            print(f"=== {label} ({name}) ===")
        print(f"\n{SEPARATOR}\n".join(texts))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(lambda: ask(args), expected=(RequestError, SettingError))


if __name__ == "__main__":
    sys.exit(main())
