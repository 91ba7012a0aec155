"""``python -m lambdas.dataset_prep`` as a subprocess against the loopback HTTP and S3 servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fakes.archive import SyntheticArchive
from fakes.http_server import BlobServer, Fault
from fakes.moto_server import MotoServer, list_keys

REPO = Path(__file__).resolve().parents[2]


def cli(moto_s3: MotoServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(moto_s3.env())
    env.pop("AWS_ENDPOINT_URL")  # the CLI gets it as --s3-endpoint-url
    return subprocess.run(
        [sys.executable, "-m", "lambdas.dataset_prep", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_prints_the_manifest_uri_last(
    moto_s3: MotoServer, s3: Any, bucket: str, http_server: BlobServer, archive: SyntheticArchive
) -> None:
    http_server.queue(Fault.truncate(archive.size // 2))
    proc = cli(
        moto_s3,
        "--source-url", http_server.url,
        "--bucket", bucket,
        "--s3-endpoint-url", moto_s3.endpoint_url,
        "--doc-count", "6",
        "--validation", "summaries",
        "--expected-md5", archive.md5,
        "--backoff-base", "0.01",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    keys = list_keys(s3, bucket)
    assert last.startswith(f"s3://{bucket}/datasets/") and last.endswith("/manifest.json")
    assert last.removeprefix(f"s3://{bucket}/") in keys and len(keys) == 3
    assert "download:" in proc.stderr and "(100%)" in proc.stderr
    assert "retrying" in proc.stderr and "train: 6/6 documents" in proc.stderr
    # Again: nothing to do, same URI.
    again = cli(moto_s3, "--source-url", http_server.url, "--bucket", bucket,
                "--s3-endpoint-url", moto_s3.endpoint_url, "--doc-count", "6", "--validation", "summaries",
                "--expected-md5", archive.md5)  # fmt: skip
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == last
    assert "already prepared" in again.stderr


def test_cli_doc_count_too_big_is_one_line_naming_doc_count(
    moto_s3: MotoServer, s3: Any, bucket: str, http_server: BlobServer
) -> None:
    proc = cli(
        moto_s3, "--source-url", http_server.url, "--bucket", bucket, "--s3-endpoint-url", moto_s3.endpoint_url,
        "--quiet",
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: doc_count=693 but the archive has only 12 documents")
    assert list_keys(s3, bucket) == []


def test_cli_failure_reason_is_the_last_stderr_line(moto_s3: MotoServer, bucket: str, http_server: BlobServer) -> None:
    http_server.always = Fault.status(500)
    proc = cli(
        moto_s3, "--source-url", http_server.url, "--bucket", bucket, "--s3-endpoint-url", moto_s3.endpoint_url,
        "--max-attempts", "2", "--backoff-base", "0.01",
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: download of http://127.0.0.1:") and "after 2 attempts" in last


def test_cli_missing_bucket_is_an_error(moto_s3: MotoServer, http_server: BlobServer) -> None:
    proc = cli(
        moto_s3, "--source-url", http_server.url, "--bucket", "no-such-bucket-xyz",
        "--s3-endpoint-url", moto_s3.endpoint_url, "--doc-count", "2", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: S3 ") and "NoSuchBucket" in lines[0]


def test_cli_local_dir_and_local_archive(moto_s3: MotoServer, archive: SyntheticArchive, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli(moto_s3, "--archive", str(archive.path), "--local-dir", str(out), "--doc-count", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    manifest = Path(proc.stdout.strip().splitlines()[-1])
    assert manifest.is_file() and manifest.parent.parent == out / "datasets"
    assert (manifest.parent / "train" / "train.txt").is_file()


def test_cli_usage_error(moto_s3: MotoServer) -> None:
    proc = cli(moto_s3, "--doc-count", "3")
    assert proc.returncode == 2 and "one of the arguments --bucket --local-dir is required" in proc.stderr
