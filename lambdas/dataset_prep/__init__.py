"""Dataset preparation: the Zenodo ``dataset.zip`` into a verified, versioned training set.

Public API::

    config = PrepConfig(doc_count=693, validation="held_out", source_url=URL, expected_md5=None)
    manifest = prepare(Path("dataset.zip"), LocalDirSink("out"), config)     # from a local archive
    # download + verify + prepare:
    result = run(config, S3Sink(boto3.client("s3"), "bucket"), Path("/tmp/work"))

Outputs live under ``datasets/<dataset_id>/``: ``train/train.txt``, ``validation/validation.txt`` and, written
last, ``manifest.json``. See docs/dataset-prep.md.
"""

from .config import (
    DEFAULT_DOC_COUNT,
    DEFAULT_SOURCE_URL,
    FORMAT_VERSION,
    SEPARATOR,
    VALIDATION_MODES,
    DownloadPolicy,
    Limits,
    PrepConfig,
    dataset_id,
    dataset_prefix,
)
from .errors import (
    ArchiveError,
    ChecksumError,
    ConfigError,
    DatasetError,
    DownloadError,
    PrepError,
    SinkError,
)
from .lock import LockLostError, LockPolicy
from .manifest import Manifest, OutputInfo
from .pipeline import run
from .prep import PrepResult, find_existing, prepare
from .progress import Reporter
from .sinks import LocalDirSink, ObjectWriter, S3Sink, Sink

__all__ = [
    "DEFAULT_DOC_COUNT",
    "DEFAULT_SOURCE_URL",
    "FORMAT_VERSION",
    "SEPARATOR",
    "VALIDATION_MODES",
    "ArchiveError",
    "ChecksumError",
    "ConfigError",
    "DatasetError",
    "DownloadError",
    "DownloadPolicy",
    "Limits",
    "LocalDirSink",
    "LockLostError",
    "LockPolicy",
    "Manifest",
    "ObjectWriter",
    "OutputInfo",
    "PrepConfig",
    "PrepError",
    "PrepResult",
    "Reporter",
    "S3Sink",
    "Sink",
    "SinkError",
    "dataset_id",
    "dataset_prefix",
    "find_existing",
    "prepare",
    "run",
]
