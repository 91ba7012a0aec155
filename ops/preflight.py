"""`make preflight`: read-only checks, with your credentials, of what `make deploy` and `make train` need, before
they spend anything. `make deploy` (ops/cdk.py) and `make train` (ops/train.py) run the same checks (`check`) in their
own process, with the settings and region they use (SKIP_PREFLIGHT=1 skips them).

    make preflight                          # what deploy and train need (C="key=value ..." as for deploy)
    make preflight ARGS="--for train"       # only what a training run needs

Checked: the credentials (STS); the CDK bootstrap stack and its version parameter (what every template's
CheckBootstrapVersion rule reads); SageMaker's training log group; Lambda's unreserved concurrency against
prep_reserved_concurrency; the SageMaker quota for the training instance type (on-demand, or spot with use_spot;
times the instance count, times the parallel jobs when tuning) and for the hosting type of the configured endpoints
(their maximum capacity each). Every problem is one line on stderr with its fix, and the exit status is 1; a clean
account gets a table of what was checked. Only Get, Describe and List calls: nothing is changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import ClientError

from config.settings import LAMBDA_MIN_UNRESERVED, Settings
from ops.aws import ClientFactory, Clients, describe_stack
from ops.context import SETTINGS_ERRORS, Selection, add_arguments, selection_from
from ops.errors import client_error_code, describe_client_error, run_command
from stacks.constructs.training_job_role import TRAINING_LOG_GROUP

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
TOOLKIT_STACK = "CDKToolkit"
QUALIFIER_KEY = "@aws-cdk/core:bootstrapQualifier"
DEFAULT_QUALIFIER = "hnb659fds"  # the CDK's DefaultStackSynthesizer.DEFAULT_QUALIFIER (a test checks)
# The synthesized templates' CheckBootstrapVersion rule refuses versions 1-5, and the cloud assembly says
# requiresBootstrapStackVersion 6 (a test reads it from a synth).
REQUIRED_BOOTSTRAP_VERSION = 6
USABLE_STACK_STATES = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}
# Lambda's "Concurrent executions" quota (Service Quotas code for service lambda).
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"
SCOPES = ("deploy", "train")


@dataclass(frozen=True)
class Finding:
    """One check: what it needs and found, and, when it is a problem, one line saying what to do."""

    check: str
    needed: str
    found: str
    problem: str = ""


@dataclass(frozen=True)
class Regional:
    """A command run's clients (ops.aws.Clients, or a test's factory) in the region the checks are for."""

    factory: ClientFactory
    region: str

    def __call__(self, service: str) -> Any:
        return self.factory(service, self.region)


def console_quota_url(region: str, service: str, code: str) -> str:
    return f"https://{region}.console.aws.amazon.com/servicequotas/home/services/{service}/quotas/{code}"


def request_command(region: str, service: str, code: str, value: int) -> str:
    return (
        f"aws service-quotas request-service-quota-increase --region {region} --service-code {service} "
        f"--quota-code {code} --desired-value {value}"
    )


def check_bootstrap(clients: Regional, account: str, qualifier: str) -> Finding:
    region = clients.region
    parameter = f"/cdk-bootstrap/{qualifier}/version"
    check = f"CDK bootstrap ({TOOLKIT_STACK}, {parameter})"
    needed = f"version >= {REQUIRED_BOOTSTRAP_VERSION}"
    stack = describe_stack(clients("cloudformation"), TOOLKIT_STACK)
    if stack is None:
        return Finding(
            check, needed, "no stack",
            f"account {account} is not bootstrapped for the CDK in {region} (no {TOOLKIT_STACK} stack): run "
            f"`make bootstrap` (cdk bootstrap aws://{account}/{region})",
        )  # fmt: skip
    status = str(stack["StackStatus"])
    if status not in USABLE_STACK_STATES:
        return Finding(
            check, needed, status,
            f"the CDK bootstrap stack {TOOLKIT_STACK} in {region} is {status}: let it finish, or delete it in the "
            "CloudFormation console if it failed, then run `make bootstrap`",
        )  # fmt: skip
    try:
        value = clients("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as error:
        if client_error_code(error)[0] != "ParameterNotFound":
            raise
        return Finding(
            check, needed, f"{status}, no {parameter}",
            f"the SSM parameter {parameter} that the templates check is missing in {region} (bootstrapped with "
            f"another qualifier?): run `make bootstrap`",
        )  # fmt: skip
    version = int(value) if str(value).isdigit() else 0
    if version < REQUIRED_BOOTSTRAP_VERSION:
        return Finding(
            check, needed, f"version {value}",
            f"the CDK bootstrap in {region} is version {value}; these templates need {REQUIRED_BOOTSTRAP_VERSION} "
            "or newer: run `make bootstrap` to upgrade it",
        )  # fmt: skip
    return Finding(check, needed, f"version {version} ({status})")


def check_training_log_group(clients: Regional) -> Finding:
    """SageMaker's training log group: a job's logs are lost without it, and the job role may not create it (it is
    shared by every training job of the account and would outlive `cdk destroy`: decisions T10)."""
    region = clients.region
    check = f"training log group {TRAINING_LOG_GROUP}"
    groups = clients("logs").describe_log_groups(logGroupNamePrefix=TRAINING_LOG_GROUP)["logGroups"]
    if any(g["logGroupName"] == TRAINING_LOG_GROUP for g in groups):
        return Finding(check, "exists", "exists")
    return Finding(
        check, "exists", "missing",
        f"the log group {TRAINING_LOG_GROUP} does not exist in {region}, so a training job's logs would be lost (the "
        f"job role may not create it): create it once: aws logs create-log-group --region {region} --log-group-name "
        f"{TRAINING_LOG_GROUP} && aws logs put-retention-policy --region {region} --log-group-name "
        f"{TRAINING_LOG_GROUP} --retention-in-days 30",
    )  # fmt: skip


def check_lambda_concurrency(clients: Regional, settings: Settings) -> Finding:
    region = clients.region
    limits = clients("lambda").get_account_settings()["AccountLimit"]
    total, unreserved = int(limits["ConcurrentExecutions"]), int(limits["UnreservedConcurrentExecutions"])
    reserve = settings.prep_reserved_concurrency
    found = f"{unreserved} of {total} unreserved"
    if reserve == 0:
        return Finding("Lambda concurrency", "none reserved (prep_reserved_concurrency=0)", found)
    # Lambda keeps LAMBDA_MIN_UNRESERVED unreserved, or the whole quota where that is smaller (new accounts: 10).
    minimum = min(LAMBDA_MIN_UNRESERVED, total)
    needed = f"{reserve} reserved, {minimum} left unreserved"
    if unreserved - reserve >= minimum:
        return Finding("Lambda concurrency", needed, found)
    quota = total - unreserved + reserve + LAMBDA_MIN_UNRESERVED
    return Finding(
        "Lambda concurrency", needed, found,
        f"prep_reserved_concurrency={reserve} would leave {unreserved - reserve} of the account's {total} Lambda "
        f"concurrent executions unreserved in {region}, below Lambda's minimum of {minimum}, so the dataset stack "
        f"would fail to deploy: set prep_reserved_concurrency=0 (the default), or raise the Lambda quota \"Concurrent "
        f"executions\" ({LAMBDA_CONCURRENCY_QUOTA}) to {quota}: "
        f"{request_command(region, 'lambda', LAMBDA_CONCURRENCY_QUOTA, quota)}",
    )  # fmt: skip


class QuotaBook:
    """A service's quotas by name: the account's applied values, else AWS's defaults (ListServiceQuotas leaves out
    quotas that have no applied value). Each list is read once, all pages, and only when needed."""

    def __init__(self, client: Any, service: str) -> None:
        self._client = client
        self._service = service
        self._lists: dict[str, dict[str, tuple[str, float]]] = {}

    def _list(self, operation: str) -> dict[str, tuple[str, float]]:
        if operation not in self._lists:
            quotas: dict[str, tuple[str, float]] = {}
            for page in self._client.get_paginator(operation).paginate(ServiceCode=self._service):
                for quota in page.get("Quotas", []):
                    quotas[str(quota["QuotaName"])] = (str(quota["QuotaCode"]), float(quota["Value"]))
            self._lists[operation] = quotas
        return self._lists[operation]

    def find(self, name: str) -> tuple[str, float] | None:
        """(quota code, value) of the quota named `name`; None when the service has no such quota here."""
        for operation in ("list_service_quotas", "list_aws_default_service_quotas"):
            found = self._list(operation).get(name)
            if found is not None:
                return found
        return None


def quota_finding(book: QuotaBook, region: str, name: str, need: int, what: str) -> Finding:
    found = book.find(name)
    if found is None:
        return Finding(
            name, str(need), "no such quota",
            f"SageMaker has no quota \"{name}\" in {region}: {what} cannot run on that instance type there; choose "
            "another instance type or region",
        )  # fmt: skip
    code, value = found
    check = f"{name} ({code})"
    if value >= need:
        return Finding(check, str(need), f"{value:g}")
    return Finding(
        check, str(need), f"{value:g}",
        f"SageMaker quota \"{name}\" ({code}) is {value:g} in {region} and {what} needs {need}: request {need} with "
        f"`{request_command(region, 'sagemaker', code, need)}` or at {console_quota_url(region, 'sagemaker', code)}",
    )  # fmt: skip


def training_quota(settings: Settings) -> tuple[str, int, str]:
    """(quota name, instances needed at once, what needs them) for the configured training run."""
    kind = settings.training_instance_type
    count = settings.training_instance_count
    name = f"{kind} for {'spot ' if settings.use_spot else ''}training job usage"
    spot = " on spot" if settings.use_spot else ""
    if settings.tuning_enabled:
        jobs = settings.tuning_parallel_jobs
        return name, count * jobs, f"the tuning job ({jobs} jobs at once x {count} x {kind}{spot})"
    return name, count, f"the training job ({count} x {kind}{spot})"


def endpoint_quota(settings: Settings) -> tuple[str, int, str] | None:
    """(quota name, instances, what needs them) for the configured endpoints; None when none is configured."""
    endpoints = settings.endpoints
    if not endpoints:
        return None
    kind, most = settings.endpoint_instance_type, settings.endpoint_max_capacity
    plural = "s" if len(endpoints) > 1 else ""
    what = f"the {' and '.join(endpoints)} endpoint{plural} (up to {most} x {kind} each, endpoint_max_capacity)"
    return f"{kind} for endpoint usage", len(endpoints) * most, what


def run_checks(clients: Regional, settings: Settings, account: str, qualifier: str, scope: str) -> list[Finding]:
    region = clients.region
    sagemaker = QuotaBook(clients("service-quotas"), "sagemaker")
    checks: list[tuple[str, Callable[[], Finding]]] = []
    if scope == "deploy":
        checks.append(("the CDK bootstrap", lambda: check_bootstrap(clients, account, qualifier)))
    checks.append(("the training log group", lambda: check_training_log_group(clients)))
    if scope == "deploy":
        checks.append(("Lambda's concurrency", lambda: check_lambda_concurrency(clients, settings)))
    checks.append(("the training quota", lambda: quota_finding(sagemaker, region, *training_quota(settings))))
    if scope == "deploy":
        endpoints = endpoint_quota(settings)
        if endpoints is None:
            checks.append(("endpoints", lambda: Finding("endpoint quota", "none configured", "-")))
        else:
            checks.append(("the endpoint quota", lambda: quota_finding(sagemaker, region, *endpoints)))
    findings = []
    for what, check in checks:
        try:
            findings.append(check())
        except ClientError as error:  # throttled, denied...: that check's own line; the others still run
            findings.append(Finding(what, "-", "not checked", f"cannot check {what}: {describe_client_error(error)}"))
    return findings


def table(findings: Sequence[Finding]) -> list[str]:
    rows = [("check", "needed", "found"), *((f.check, f.needed, f.found) for f in findings)]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]


def qualifier_of(selection: Selection) -> str:
    """The CDK bootstrap qualifier: the CDK's own context (cdk.json, -c), not one of the app's settings."""
    context = {**json.loads(CDK_JSON.read_text())["context"], **selection.overrides}
    return str(context.get(QUALIFIER_KEY) or DEFAULT_QUALIFIER)


def check(
    settings: Settings,
    *,
    scope: str,
    region: str,
    clients: ClientFactory,
    qualifier: str = DEFAULT_QUALIFIER,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> bool:
    """The preflight of `make <scope>` for these settings in `region`: each problem as an `error:` line on `err`, or
    the table of what was checked on `out`. True when everything passed. `make deploy` and `make train` call it
    with the settings and region they are about to use."""
    regional = Regional(clients, region)
    identity = regional("sts").get_caller_identity()
    account, arn = str(identity["Account"]), str(identity["Arn"])
    findings = run_checks(regional, settings, account, qualifier, scope)
    problems = [f.problem for f in findings if f.problem]
    for problem in problems:
        print(f"error: {problem}", file=err or sys.stderr)
    if problems:
        return False
    stream = out or sys.stdout
    print(f"preflight for `make {scope}`, account {account} in {region} ({arn}): all checks passed", file=stream)
    for line in table(findings):
        print(line, file=stream)
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make preflight", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--for", dest="scope", choices=SCOPES, default="deploy", help="what is about to run")
    parser.add_argument("--region", help="default: the configured region (config/<env>.json, -c region=...)")
    add_arguments(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    selection = selection_from(args)
    settings = selection.settings()
    passed = check(
        settings,
        scope=args.scope,
        region=args.region or settings.region,
        clients=Clients(),
        qualifier=qualifier_of(selection),
    )
    return 0 if passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(lambda: run(args), expected=SETTINGS_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
