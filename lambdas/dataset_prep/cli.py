"""Command line: ``python -m lambdas.dataset_prep --source-url URL --bucket NAME ...``.

Progress goes to stderr; the manifest's URI is the last line on stdout. On failure: exit status 1 and one line
``error: <reason>`` on stderr (2 for usage errors, from argparse).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from .config import (
    DEFAULT_DOC_COUNT,
    DEFAULT_SOURCE_URL,
    DEFAULT_VALIDATION,
    VALIDATION_MODES,
    DownloadPolicy,
    PrepConfig,
)
from .errors import PrepError, one_line
from .pipeline import run
from .prep import PrepResult, prepare_archive
from .progress import Reporter
from .sinks import LocalDirSink, S3Sink, Sink


class StderrReporter(Reporter):
    """Human progress lines on stderr: download every 5 % (or 2 s), documents every 50."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._last_pct = -1
        self._last_time = 0.0

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def download(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if total:
            pct = done * 100 // total
            if pct // 5 == self._last_pct // 5 and now - self._last_time < 2 and done != total:
                return
            self._last_pct = pct
            self._print(f"download: {done / 1e6:.1f} of {total / 1e6:.1f} MB ({pct}%)")
        elif now - self._last_time >= 2:
            self._print(f"download: {done / 1e6:.1f} MB")
        self._last_time = now

    def retry(self, attempt: int, delay: float, reason: str) -> None:
        self._print(f"download: attempt {attempt} failed ({reason}); retrying in {delay:.1f}s")

    def document(self, output: str, index: int, count: int, name: str) -> None:
        if index % 50 == 0 or index == count:
            self._print(f"{output}: {index}/{count} documents")

    def info(self, message: str) -> None:
        self._print(message)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lambdas.dataset_prep",
        description="Prepare the UK-Abs training/validation texts from the Zenodo dataset.zip into S3.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bucket", help="S3 bucket to write datasets/<id>/... into")
    where.add_argument("--local-dir", type=Path, help="write datasets/<id>/... under this directory instead")
    parser.add_argument("--source-url", default=DEFAULT_SOURCE_URL, help="URL of dataset.zip (default: Zenodo)")
    parser.add_argument("--archive", type=Path, help="use this local dataset.zip instead of downloading")
    parser.add_argument("--s3-endpoint-url", help="S3 endpoint (e.g. a local moto server)")
    parser.add_argument("--region", help="AWS region for the S3 client")
    parser.add_argument("--doc-count", type=int, default=DEFAULT_DOC_COUNT, help="training documents (693)")
    parser.add_argument("--validation", choices=VALIDATION_MODES, default=DEFAULT_VALIDATION)
    parser.add_argument("--expected-md5", help="md5 the archive must have (checked before opening it)")
    parser.add_argument("--workdir", type=Path, help="directory for the downloaded archive (default: a temp dir)")
    parser.add_argument("--max-total-seconds", type=float, default=DownloadPolicy().max_total_seconds)
    parser.add_argument("--max-attempts", type=int, default=DownloadPolicy().max_attempts)
    parser.add_argument("--backoff-base", type=float, default=DownloadPolicy().backoff_base)
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def _sink(args: argparse.Namespace) -> Sink:
    if args.local_dir is not None:
        return LocalDirSink(args.local_dir)
    import boto3  # only needed for S3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=args.s3_endpoint_url,
        region_name=args.region,
        config=Config(retries={"mode": "standard", "max_attempts": 8}),
    )
    return S3Sink(client, args.bucket)


def _execute(args: argparse.Namespace, reporter: Reporter) -> PrepResult:
    config = PrepConfig(
        doc_count=args.doc_count,
        validation=args.validation,
        source_url=args.source_url,
        expected_md5=args.expected_md5,
    )
    sink = _sink(args)
    if args.archive is not None:
        return prepare_archive(args.archive, sink, config, reporter=reporter)
    policy = DownloadPolicy(
        max_total_seconds=args.max_total_seconds,
        max_attempts=args.max_attempts,
        backoff_base=args.backoff_base,
    )
    if args.workdir is not None:
        return run(config, sink, args.workdir, policy=policy, reporter=reporter)
    with tempfile.TemporaryDirectory(prefix="dataset-prep-") as workdir:
        return run(config, sink, Path(workdir), policy=policy, reporter=reporter)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reporter = Reporter() if args.quiet else StderrReporter()
    try:
        result = _execute(args, reporter)
    except PrepError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line, even for the unexpected
        print(f"error: {type(err).__name__}: {one_line(err)}", file=sys.stderr)
        return 1
    state = "reused" if result.reused else "written"
    reporter.info(f"dataset {result.dataset_id} {state}; train {result.train_uri}; validation {result.validation_uri}")
    print(result.manifest_uri, flush=True)
    return 0
