"""The training script folder, shipped as the job's `sagemaker_submit_directory`.

The SageMaker training toolkit expects that directory as a gzipped tarball, which the CDK's own asset packaging does
not make (it zips folders). So synth builds one itself, byte for byte the same from the same files: sorted
entries, every timestamp 0, owner root, fixed modes, a gzip header without name or time. Two synths then give
the same asset hash, and a deploy uploads a new archive only when a file changed.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

ROOT = Path(__file__).resolve().parents[2]
TRAINING_SOURCE = ROOT / "training"
# Outside cdk.out on purpose: cdk.out may be any folder (tests synthesize into temporary ones). Git-ignored.
BUILD_DIR = ROOT / "build"
ARCHIVE_NAME = "training-source.tar.gz"
# Not part of the job: caches, tests, and the CPU test pins (the container has its own torch).
EXCLUDED_DIRS = frozenset({"__pycache__", "tests", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
EXCLUDED_FILES = frozenset({"requirements-test.txt"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def source_files(source: Path) -> Iterator[Path]:
    """Files to ship, relative to `source`, in a stable order."""
    for directory, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name in EXCLUDED_FILES or name.endswith(EXCLUDED_SUFFIXES) or name.startswith("."):
                continue
            yield (Path(directory) / name).relative_to(source)


def archive_bytes(source: Path) -> bytes:
    """A deterministic .tar.gz of `source`'s files at the archive's root (train.py on top, as the toolkit wants)."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for relative in source_files(source):
            data = (source / relative).read_bytes()
            info = tarfile.TarInfo(relative.as_posix())
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_archive(source: Path = TRAINING_SOURCE, build_dir: Path = BUILD_DIR) -> Path:
    """Write the archive into `build_dir` (atomically: parallel synths may share the folder) and return its path."""
    data = archive_bytes(source)
    build_dir.mkdir(parents=True, exist_ok=True)
    target = build_dir / ARCHIVE_NAME
    if target.exists() and target.read_bytes() == data:
        return target
    fd, temporary = tempfile.mkstemp(dir=build_dir, prefix=".training-source-", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    Path(temporary).replace(target)
    return target


class TrainingSource(Construct):
    """training/ as a deterministic tarball asset in the CDK assets bucket."""

    def __init__(self, scope: Construct, construct_id: str, *, source: Path = TRAINING_SOURCE) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(self, "Archive", path=str(build_archive(source)))
        self.s3_uri = self.asset.s3_object_url

    def grant_read(self, role: iam.IRole) -> None:
        """The object itself, nothing else of the assets bucket (`Asset.grant_read` grants the whole bucket's
        listing and wildcard actions)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.asset.bucket.arn_for_objects(self.asset.s3_object_key)],
            )
        )
