"""The manifest: the only file readers trust. Written last; deterministic bytes (no timestamps)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .config import FORMAT_VERSION, SEPARATOR

MANIFEST_FORMAT = "legal-gptj-cdk/dataset-manifest"
MANIFEST_NAME = "manifest.json"
TRAIN_KEY = "train/train.txt"
VALIDATION_KEY = "validation/validation.txt"


class ManifestError(ValueError):
    """The bytes are not a manifest this code can trust."""


def _require(mapping: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ManifestError(f"manifest lacks {key!r}")
    value = mapping[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"manifest field {key!r} has the wrong type")
    return value


@dataclass(frozen=True)
class OutputInfo:
    """One output file: where it is, its integrity, and what it holds."""

    key: str
    size_bytes: int
    sha256: str
    #: The archive folder the documents came from, relative to ``UK-Abs/``.
    source_folder: str
    #: Document ids (file names without ``.txt``) in output order.
    documents: tuple[str, ...]
    words: int
    characters: int
    non_space_characters: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "source_folder": self.source_folder,
            "document_count": len(self.documents),
            "documents": list(self.documents),
            "words": self.words,
            "characters": self.characters,
            "non_space_characters": self.non_space_characters,
        }

    @classmethod
    def from_dict(cls, data: Any) -> OutputInfo:
        documents = _require(data, "documents", list)
        if not all(isinstance(d, str) for d in documents):
            raise ManifestError("manifest document ids must be strings")
        if _require(data, "document_count", int) != len(documents):
            raise ManifestError("manifest document_count does not match its documents")
        return cls(
            key=_require(data, "key", str),
            size_bytes=_require(data, "size_bytes", int),
            sha256=_require(data, "sha256", str),
            source_folder=_require(data, "source_folder", str),
            documents=tuple(documents),
            words=_require(data, "words", int),
            characters=_require(data, "characters", int),
            non_space_characters=_require(data, "non_space_characters", int),
        )


@dataclass(frozen=True)
class Manifest:
    """Describes one prepared dataset under ``datasets/<dataset_id>/``."""

    dataset_id: str
    prefix: str
    source_url: str
    archive_md5: str
    archive_size_bytes: int
    doc_count: int
    validation: str
    train: OutputInfo
    validation_output: OutputInfo

    @property
    def key(self) -> str:
        return self.prefix + MANIFEST_NAME

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "format_version": FORMAT_VERSION,
            "dataset_id": self.dataset_id,
            "prefix": self.prefix,
            "source": {
                "url": self.source_url,
                "md5": self.archive_md5,
                "size_bytes": self.archive_size_bytes,
            },
            "config": {
                "doc_count": self.doc_count,
                "validation": self.validation,
                "order": "sorted file name",
                "separator": SEPARATOR,
                "encoding": "utf-8",
                "newlines": "universal (CRLF and CR become LF)",
            },
            "outputs": {"train": self.train.to_dict(), "validation": self.validation_output.to_dict()},
        }

    def to_bytes(self) -> bytes:
        """Canonical bytes: sorted keys, two-space indent, final newline; equal manifests, equal bytes."""
        return (json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError(f"manifest is not JSON: {err}") from None
        if _require(doc, "format", str) != MANIFEST_FORMAT:
            raise ManifestError("not a dataset manifest")
        version = _require(doc, "format_version", int)
        if version != FORMAT_VERSION:
            raise ManifestError(f"manifest format_version {version}, this code reads {FORMAT_VERSION}")
        source = _require(doc, "source", dict)
        config = _require(doc, "config", dict)
        outputs = _require(doc, "outputs", dict)
        return cls(
            dataset_id=_require(doc, "dataset_id", str),
            prefix=_require(doc, "prefix", str),
            source_url=_require(source, "url", str),
            archive_md5=_require(source, "md5", str),
            archive_size_bytes=_require(source, "size_bytes", int),
            doc_count=_require(config, "doc_count", int),
            validation=_require(config, "validation", str),
            train=OutputInfo.from_dict(_require(outputs, "train", dict)),
            validation_output=OutputInfo.from_dict(_require(outputs, "validation", dict)),
        )
