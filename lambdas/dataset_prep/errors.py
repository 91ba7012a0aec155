"""Exceptions raised by dataset preparation.

Every error carries a one-line message that names the file, setting or URL at fault, so that the CLI can print
it as is and the Lambda reports it as ``errorMessage``.
"""

from __future__ import annotations


class PrepError(Exception):
    """Base class: dataset preparation failed; ``str(error)`` is a one-line reason."""


class ConfigError(PrepError):
    """An invalid setting (doc_count, validation, URL, md5, bucket...)."""


class DownloadError(PrepError):
    """The archive could not be downloaded (HTTP error, retries or time budget exhausted, too large)."""


class ChecksumError(PrepError):
    """The downloaded archive's md5 differs from the expected one."""


class ArchiveError(PrepError):
    """The zip archive is corrupt or unsafe (bomb, path traversal, symlink, duplicate, ...)."""


class DatasetError(PrepError):
    """A valid zip but not the expected dataset (missing folder, too few documents, empty or bad text)."""


class SinkError(PrepError):
    """Writing to or reading from the output storage (S3 or a local directory) failed."""


def one_line(err: BaseException) -> str:
    """An exception's message on one line (whitespace folded), or its type's name when it has none."""
    return " ".join(str(err).split()) or type(err).__name__
