"""Download, verify and prepare: the whole job, as the Lambda and the CLI run it."""

from __future__ import annotations

from pathlib import Path

from .config import DownloadPolicy, Limits, PrepConfig, dataset_id
from .download import download
from .lock import LockPolicy
from .prep import PrepResult, build, check_md5, reuse_existing
from .progress import Reporter
from .sinks import Sink

ARCHIVE_NAME = "dataset.zip"


def run(
    config: PrepConfig,
    sink: Sink,
    workdir: Path,
    *,
    policy: DownloadPolicy | None = None,
    limits: Limits | None = None,
    reporter: Reporter | None = None,
    lock_policy: LockPolicy | None = None,
) -> PrepResult:
    """Download ``config.source_url`` into ``workdir``, verify it, and prepare the dataset in ``sink``.

    With ``expected_md5`` the dataset id is known up front: when a valid manifest already exists, nothing is
    downloaded or written. Without it the archive must be downloaded to learn its md5; an existing dataset is
    then still reused (nothing written). The archive is deleted from ``workdir`` before returning.
    """
    reporter = reporter or Reporter()
    limits = limits or Limits()
    if config.expected_md5 is not None:
        ds_id = dataset_id(config.expected_md5, config)
        reused = reuse_existing(sink, ds_id, config.expected_md5, reporter, downloaded=False)
        if reused is not None:
            return reused
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / ARCHIVE_NAME
    try:
        result = download(
            config.source_url, archive, policy=policy, max_bytes=limits.max_archive_bytes, reporter=reporter
        )
        check_md5(result.md5, config, f"downloaded {config.source_url} ({result.size} bytes)")
        reporter.info(
            f"downloaded {result.size} bytes, md5 {result.md5}"
            + (" (verified)" if config.expected_md5 else " (no expected_md5 given: not verified)")
        )
        return build(
            archive, sink, config, archive_md5=result.md5, limits=limits, reporter=reporter, downloaded=True,
            lock_policy=lock_policy,
        )  # fmt: skip
    finally:
        archive.unlink(missing_ok=True)
