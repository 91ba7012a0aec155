"""Build the training and validation texts and the manifest from a verified archive."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .archive import SafeArchive
from .config import SEPARATOR, Limits, PrepConfig, dataset_id, dataset_prefix
from .errors import ChecksumError, DatasetError, SinkError, one_line
from .lock import DatasetLock, LockLostError, LockPolicy, acquire
from .manifest import MANIFEST_NAME, TRAIN_KEY, VALIDATION_KEY, Manifest, ManifestError, OutputInfo
from .progress import Reporter
from .sinks import ObjectWriter, Sink
from .text import DocumentText, TextCounts, UndecodableTextError

TRAIN_FOLDER = "train-data/judgement"
SUMMARY_FOLDER = "train-data/summary"
HELD_OUT_FOLDER = "test-data/judgement"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
_SEPARATOR_BYTES = SEPARATOR.encode("utf-8")


@dataclass(frozen=True)
class PrepResult:
    """What :func:`prepare` / :func:`run` produced (or found already there)."""

    manifest: Manifest
    manifest_uri: str
    #: URIs of the folders (with a trailing ``/``) holding only ``train.txt`` / ``validation.txt``.
    train_uri: str
    validation_uri: str
    #: True when a valid manifest already existed and nothing was written.
    reused: bool
    #: True when the archive was downloaded in this call.
    downloaded: bool

    @property
    def dataset_id(self) -> str:
        return self.manifest.dataset_id

    @property
    def prefix(self) -> str:
        return self.manifest.prefix

    @property
    def manifest_key(self) -> str:
        return self.manifest.key


def file_md5(path: Path, chunk_size: int = 1024 * 1024) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def find_existing(sink: Sink, ds_id: str, archive_md5: str, reporter: Reporter | None = None) -> Manifest | None:
    """The manifest at ``datasets/<ds_id>/`` if present, consistent, and its outputs at the recorded sizes."""
    prefix = dataset_prefix(ds_id)
    data = sink.read(prefix + MANIFEST_NAME)
    if data is None:
        return None
    try:
        manifest = Manifest.from_bytes(data)
    except ManifestError as err:
        if reporter:
            reporter.info(f"ignoring invalid manifest at {sink.uri(prefix + MANIFEST_NAME)}: {err}")
        return None
    problems = []
    if manifest.dataset_id != ds_id or manifest.prefix != prefix or manifest.archive_md5 != archive_md5:
        problems.append("identity does not match")
    for output in (manifest.train, manifest.validation_output):
        if sink.size(output.key) != output.size_bytes:
            problems.append(f"{output.key} missing or of the wrong size")
    if problems:
        if reporter:
            reporter.info(f"ignoring manifest at {sink.uri(prefix + MANIFEST_NAME)}: {'; '.join(problems)}")
        return None
    return manifest


def check_md5(md5: str, config: PrepConfig, source: str) -> None:
    """Raise :class:`~.errors.ChecksumError` when ``config.expected_md5`` is set and ``md5`` differs."""
    if config.expected_md5 is not None and md5 != config.expected_md5:
        raise ChecksumError(f"{source}: md5 {md5} does not match expected_md5 {config.expected_md5}")


def reuse_existing(
    sink: Sink, ds_id: str, archive_md5: str, reporter: Reporter, *, downloaded: bool
) -> PrepResult | None:
    """The result for a dataset already complete in ``sink`` (nothing is written), else None."""
    existing = find_existing(sink, ds_id, archive_md5, reporter)
    if existing is None:
        return None
    reporter.info(f"dataset {ds_id} already prepared at {sink.uri(existing.key)}; nothing to do")
    return result_for(sink, existing, reused=True, downloaded=downloaded)


def result_for(sink: Sink, manifest: Manifest, *, reused: bool, downloaded: bool) -> PrepResult:
    return PrepResult(
        manifest=manifest,
        manifest_uri=sink.uri(manifest.key),
        train_uri=sink.uri(manifest.prefix + "train/"),
        validation_uri=sink.uri(manifest.prefix + "validation/"),
        reused=reused,
        downloaded=downloaded,
    )


class _HashingWriter:
    def __init__(self, writer: ObjectWriter) -> None:
        self._writer = writer
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._writer.write(data)
            self.sha256.update(data)
            self.size += len(data)


def _write_output(
    archive: SafeArchive,
    sink: Sink,
    *,
    output: str,
    key: str,
    folder: str,
    documents: list[tuple[str, zipfile.ZipInfo]],
    reporter: Reporter,
) -> OutputInfo:
    totals = TextCounts()
    with sink.open_writer(key, TEXT_CONTENT_TYPE) as raw:
        writer = _HashingWriter(raw)
        for index, (name, info) in enumerate(documents, start=1):
            text = DocumentText()
            try:
                for chunk in archive.iter_bytes(info):
                    writer.write(text.feed(chunk))
                writer.write(text.finish())
            except UndecodableTextError as err:
                raise DatasetError(f"document {info.filename!r} is {err}") from None
            if text.counts.non_space_characters == 0:
                raise DatasetError(f"document {info.filename!r} is empty (only whitespace)")
            writer.write(_SEPARATOR_BYTES)
            totals.add(text.counts)
            reporter.document(output, index, len(documents), name)
    return OutputInfo(
        key=key,
        size_bytes=writer.size,
        sha256=writer.sha256.hexdigest(),
        source_folder=folder,
        documents=tuple(name.removesuffix(".txt") for name, _ in documents),
        words=totals.words,
        characters=totals.characters,
        non_space_characters=totals.non_space_characters,
    )


def _plan(
    archive: SafeArchive, config: PrepConfig
) -> tuple[list[tuple[str, zipfile.ZipInfo]], str, list[tuple[str, zipfile.ZipInfo]]]:
    """Choose and check every input document before anything is written."""
    available = archive.documents(TRAIN_FOLDER)
    if len(available) < config.doc_count:
        raise DatasetError(
            f"doc_count={config.doc_count} but the archive has only {len(available)} documents in UK-Abs/{TRAIN_FOLDER}"
        )
    train_names = available[: config.doc_count]
    train = [(name, _member(archive, TRAIN_FOLDER, name)) for name in train_names]
    if config.validation == "held_out":
        folder = HELD_OUT_FOLDER
        names = archive.documents(HELD_OUT_FOLDER)
        if not names:
            raise DatasetError(f"validation=held_out but the archive has no documents in UK-Abs/{HELD_OUT_FOLDER}")
    else:
        folder = SUMMARY_FOLDER
        archive.documents(SUMMARY_FOLDER)  # raises when the folder is missing
        names = train_names
    validation = [(name, _member(archive, folder, name)) for name in names]
    for _, info in train + validation:
        if info.file_size == 0:
            raise DatasetError(f"document {info.filename!r} is empty (0 bytes)")
    return train, folder, validation


def _member(archive: SafeArchive, folder: str, name: str) -> zipfile.ZipInfo:
    info = archive.member(folder, name)
    if info is None or info.is_dir():
        raise DatasetError(f"archive lacks UK-Abs/{folder}/{name}")
    return info


def build(
    archive_path: Path,
    sink: Sink,
    config: PrepConfig,
    *,
    archive_md5: str,
    limits: Limits | None = None,
    reporter: Reporter | None = None,
    downloaded: bool = False,
    lock_policy: LockPolicy | None = None,
) -> PrepResult:
    """Write the outputs for an archive whose md5 is already known and verified (see :func:`prepare`).

    One run writes a dataset at a time (``lock.py``): a run that finds another one writing the same dataset waits
    and then reuses its result.
    """
    reporter = reporter or Reporter()
    ds_id = dataset_id(archive_md5, config)
    prefix = dataset_prefix(ds_id)
    reused = reuse_existing(sink, ds_id, archive_md5, reporter, downloaded=downloaded)
    if reused is not None:
        return reused
    with SafeArchive(archive_path, limits) as archive:
        train_docs, validation_folder, validation_docs = _plan(archive, config)
        lock = acquire(
            sink,
            prefix,
            lock_policy or LockPolicy(),
            is_done=lambda: find_existing(sink, ds_id, archive_md5) is not None,
            reporter=reporter,
        )
        if lock is None:
            reused = reuse_existing(sink, ds_id, archive_md5, reporter, downloaded=downloaded)
            if reused is None:  # it was complete a moment ago: only a deletion from outside can do this
                raise SinkError(f"the dataset at {sink.uri(prefix)} was deleted while this run looked at it")
            return reused
        try:
            train = _write_output(
                archive, sink, output="train", key=prefix + TRAIN_KEY, folder=TRAIN_FOLDER,
                documents=train_docs, reporter=reporter,
            )  # fmt: skip
            validation = _write_output(
                archive, sink, output="validation", key=prefix + VALIDATION_KEY, folder=validation_folder,
                documents=validation_docs, reporter=reporter,
            )  # fmt: skip
            manifest = Manifest(
                dataset_id=ds_id,
                prefix=prefix,
                source_url=config.source_url,
                archive_md5=archive_md5,
                archive_size_bytes=archive_path.stat().st_size,
                doc_count=config.doc_count,
                validation=config.validation,
                train=train,
                validation_output=validation,
            )
            lock.renew()  # still this run's, for another lease: nobody else writes here until it is released
            sink.put(manifest.key, manifest.to_bytes(), "application/json")
        except LockLostError:
            raise  # the prefix is the new holder's now: leave it alone
        except BaseException:
            _clean_up(sink, lock, ds_id, archive_md5, reporter)
            raise
    reporter.info(f"manifest written: {sink.uri(manifest.key)}")
    try:
        lock.release()
    except SinkError as err:  # the dataset is complete and found before any lock is looked at: harmless
        reporter.info(f"could not remove the lock {sink.uri(lock.key)} ({err}); it expires by itself")
    return result_for(sink, manifest, reused=False, downloaded=downloaded)


def _clean_up(sink: Sink, lock: DatasetLock, ds_id: str, archive_md5: str, reporter: Reporter) -> None:
    """After a failure: delete this run's outputs, by name, then its lock, but only while the lock is still this
    run's. A run whose lease ran out may have been taken over (lock.py): the prefix, lock and outputs alike, is then
    the new holder's, and deleting anything there would break its run."""
    prefix = dataset_prefix(ds_id)
    try:
        # Renewing is the check: it succeeds only on this run's version of the lock, and then no other run can take
        # the lock before the lease just renewed runs out, so the deletions below cannot touch another run's objects.
        lock.renew()
    except LockLostError:
        reporter.info(f"not cleaning up under {sink.uri(prefix)}: another run holds the lock {sink.uri(lock.key)} now")
        return
    except Exception as err:  # unknown whether it is still ours: leave everything; the lock expires by itself
        reporter.info(f"not cleaning up under {sink.uri(prefix)}: the lock could not be checked: {one_line(err)}")
        return
    try:
        if find_existing(sink, ds_id, archive_md5) is not None:  # the manifest went out before the failure
            reporter.info(f"a complete dataset is at {sink.uri(prefix)}; leaving it")
        else:
            for key in (prefix + TRAIN_KEY, prefix + VALIDATION_KEY):
                sink.delete(key)
            reporter.info(f"cleaned up this run's outputs under {sink.uri(prefix)}")
        if not sink.delete_if(lock.key, lock.tag):
            reporter.info(f"the lock {sink.uri(lock.key)} changed meanwhile; left in place")
    except Exception as err:  # the original error matters more; say what is left behind
        reporter.info(f"clean-up under {sink.uri(prefix)} failed: {one_line(err)}")


def prepare_archive(
    archive_path: Path,
    sink: Sink,
    config: PrepConfig,
    *,
    limits: Limits | None = None,
    reporter: Reporter | None = None,
    lock_policy: LockPolicy | None = None,
) -> PrepResult:
    """Build ``datasets/<id>/{train/train.txt, validation/validation.txt, manifest.json}`` in ``sink`` from a local
    archive.

    Computes the archive's md5 and checks it against ``config.expected_md5`` (when set) before opening the
    zip. Returns the existing dataset, writing nothing, when a valid manifest is already at the prefix.
    Raises a :class:`~.errors.PrepError` subclass on failure, after removing whatever it wrote.
    """
    md5 = file_md5(archive_path)
    check_md5(md5, config, str(archive_path))
    return build(archive_path, sink, config, archive_md5=md5, limits=limits, reporter=reporter, lock_policy=lock_policy)


def prepare(
    archive_path: Path,
    sink: Sink,
    config: PrepConfig,
    *,
    limits: Limits | None = None,
    reporter: Reporter | None = None,
    lock_policy: LockPolicy | None = None,
) -> Manifest:
    """:func:`prepare_archive`, returning only the manifest."""
    return prepare_archive(
        archive_path, sink, config, limits=limits, reporter=reporter, lock_policy=lock_policy
    ).manifest
