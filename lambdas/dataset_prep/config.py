"""Settings: what to build (:class:`PrepConfig`) and the caps (:class:`Limits`, :class:`DownloadPolicy`)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

#: Zenodo record 7152317 (Shukla et al., AACL 2022): the whole Law-AI summarisation dataset.
DEFAULT_SOURCE_URL = "https://zenodo.org/records/7152317/files/dataset.zip?download=1"
DEFAULT_DOC_COUNT = 693
VALIDATION_MODES = ("held_out", "summaries")
DEFAULT_VALIDATION = "held_out"
#: The original notebook's separator written after every document.
SEPARATOR = "\n" + "-" * 65 + "\n"
#: Version of the output layout and manifest schema; part of the dataset id, so a change gives a new prefix.
FORMAT_VERSION = 1
DATASETS_PREFIX = "datasets/"

_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class PrepConfig:
    """What to build.

    ``doc_count``: the first N judgments of ``UK-Abs/train-data/judgement`` in sorted file-name order.
    ``validation``: ``"held_out"`` (all ``UK-Abs/test-data/judgement`` documents) or ``"summaries"`` (the
    summaries of the same N training documents, as the original notebook did).
    ``source_url``: where ``dataset.zip`` is downloaded from (http or https).
    ``expected_md5``: pinned md5 of the archive (lower-case hex); when set, the download is verified against
    it before the zip is opened, and an existing dataset is found without downloading at all.
    """

    doc_count: int = DEFAULT_DOC_COUNT
    validation: str = DEFAULT_VALIDATION
    source_url: str = DEFAULT_SOURCE_URL
    expected_md5: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.doc_count, bool) or not isinstance(self.doc_count, int) or self.doc_count < 1:
            raise ConfigError(f"doc_count must be a positive integer, got {self.doc_count!r}")
        if self.validation not in VALIDATION_MODES:
            raise ConfigError(f"validation must be one of {', '.join(VALIDATION_MODES)}, got {self.validation!r}")
        parts = urlsplit(self.source_url) if isinstance(self.source_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"source_url must be an http(s) URL, got {self.source_url!r}")
        if self.expected_md5 is not None:
            md5 = self.expected_md5.strip().lower() if isinstance(self.expected_md5, str) else ""
            if not _MD5_RE.match(md5):
                raise ConfigError(f"expected_md5 must be 32 hex digits, got {self.expected_md5!r}")
            object.__setattr__(self, "expected_md5", md5)

    def content_params(self) -> dict[str, Any]:
        """The settings that decide the output (with the archive); they, not the URL, name the dataset."""
        return {"doc_count": self.doc_count, "format_version": FORMAT_VERSION, "validation": self.validation}


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no insignificant whitespace, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def dataset_id(archive_md5: str, config: PrepConfig) -> str:
    """Content address: sha256 of the archive md5 and the canonical content settings, first 16 hex digits."""
    material = archive_md5 + "\n" + canonical_json(config.content_params())
    return hashlib.sha256(material.encode("ascii")).hexdigest()[:16]


def dataset_prefix(ds_id: str) -> str:
    return f"{DATASETS_PREFIX}{ds_id}/"


@dataclass(frozen=True)
class Limits:
    """Caps that keep a hostile or wrong archive from exhausting disk, memory or time."""

    #: Largest archive accepted from the network (the real one is about 93 MB).
    max_archive_bytes: int = 1 * GiB
    #: Most entries (files and folders) in the zip (the real one has about 16,500).
    max_entries: int = 50_000
    #: Largest uncompressed member (the largest real judgment is a few MB).
    max_member_bytes: int = 64 * MiB
    #: Largest total uncompressed size of all members (the real archive is about 0.3 GB).
    max_total_bytes: int = 4 * GiB
    #: Highest uncompressed/compressed ratio, per member and overall (English text deflates 3-5x).
    max_ratio: float = 100.0
    #: Members smaller than this are exempt from the per-member ratio check (tiny files compress oddly).
    ratio_min_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        for name in (
            "max_archive_bytes",
            "max_entries",
            "max_member_bytes",
            "max_total_bytes",
            "ratio_min_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not self.max_ratio > 1:
            raise ConfigError(f"max_ratio must be > 1, got {self.max_ratio!r}")


@dataclass(frozen=True)
class DownloadPolicy:
    """Retries with exponential backoff and full jitter, per-read timeout, and a total time budget."""

    #: Attempts in all (first try included) before giving up.
    max_attempts: int = 8
    #: Backoff before retry n (1-based) is uniform(0, min(backoff_max, backoff_base * 2**(n-1))) seconds.
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    #: Socket timeout for connecting and for each read, seconds.
    timeout: float = 30.0
    #: Wall-clock budget for the whole download, retries and waits included, seconds.
    max_total_seconds: float = 600.0
    #: Bytes per read.
    chunk_size: int = 1 * MiB
    user_agent: str = "legal-gptj-cdk-dataset-prep/1"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        for name in ("backoff_base", "backoff_max", "timeout", "max_total_seconds"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value!r}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {self.chunk_size!r}")
