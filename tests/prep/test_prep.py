"""prepare() into a local directory: content, order, manifest, determinism, reuse, and every bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fakes.archive import SyntheticArchive, build_synthetic_archive
from lambdas.dataset_prep import (
    SEPARATOR,
    ChecksumError,
    DatasetError,
    LocalDirSink,
    Manifest,
    PrepConfig,
    PrepError,
    dataset_id,
    prepare,
)
from tests.prep.helpers import expected_text, files_under


def test_outputs_content_order_and_manifest(archive: SyntheticArchive, tmp_path: Path) -> None:
    config = PrepConfig(doc_count=7)
    manifest = prepare(archive.path, LocalDirSink(tmp_path), config)
    ds = dataset_id(archive.md5, config)
    prefix = f"datasets/{ds}/"
    assert files_under(tmp_path) == [
        f"{prefix}manifest.json",
        f"{prefix}train/train.txt",
        f"{prefix}validation/validation.txt",
    ]
    train = (tmp_path / prefix / "train/train.txt").read_bytes()
    validation = (tmp_path / prefix / "validation/validation.txt").read_bytes()
    names = archive.uk_train_names[:7]
    assert train == expected_text(archive, "train-data/judgement", names)
    assert validation == expected_text(archive, "test-data/judgement", archive.uk_test_names)
    assert train.count(SEPARATOR.encode()) == 7 and train.endswith(SEPARATOR.encode())

    on_disk = Manifest.from_bytes((tmp_path / prefix / "manifest.json").read_bytes())
    assert on_disk == manifest
    assert manifest.dataset_id == ds and manifest.prefix == prefix
    assert manifest.archive_md5 == archive.md5 and manifest.archive_size_bytes == archive.size
    assert manifest.train.documents == tuple(n.removesuffix(".txt") for n in names)
    assert manifest.validation_output.documents == tuple(n.removesuffix(".txt") for n in archive.uk_test_names)
    for output, data in ((manifest.train, train), (manifest.validation_output, validation)):
        assert output.size_bytes == len(data)
        assert output.sha256 == hashlib.sha256(data).hexdigest()
        text = data.decode().replace(SEPARATOR, "\n")
        assert output.words == len(text.split())
        assert output.non_space_characters == sum(len(w) for w in text.split())
        assert output.characters == len(data.decode()) - len(output.documents) * len(SEPARATOR)
    doc = json.loads((tmp_path / prefix / "manifest.json").read_text())
    assert doc["format_version"] == 1
    assert doc["config"] == {
        "doc_count": 7,
        "validation": "held_out",
        "order": "sorted file name",
        "separator": SEPARATOR,
        "encoding": "utf-8",
        "newlines": "universal (CRLF and CR become LF)",
    }
    assert doc["source"]["url"] == config.source_url
    assert doc["outputs"]["train"]["document_count"] == 7


def test_summaries_mode_uses_the_summaries_of_the_same_documents(archive: SyntheticArchive, tmp_path: Path) -> None:
    manifest = prepare(archive.path, LocalDirSink(tmp_path), PrepConfig(doc_count=4, validation="summaries"))
    data = (tmp_path / manifest.validation_output.key).read_bytes()
    assert data == expected_text(archive, "train-data/summary", archive.uk_train_names[:4])
    assert manifest.validation_output.documents == manifest.train.documents
    assert manifest.validation_output.source_folder == "train-data/summary"


def test_same_inputs_give_the_same_bytes(archive: SyntheticArchive, tmp_path: Path) -> None:
    config = PrepConfig(doc_count=5)
    a = prepare(archive.path, LocalDirSink(tmp_path / "a"), config)
    b = prepare(archive.path, LocalDirSink(tmp_path / "b"), config)
    assert a == b
    for rel in files_under(tmp_path / "a"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_different_settings_give_different_prefixes(archive: SyntheticArchive, tmp_path: Path) -> None:
    ids = {
        prepare(archive.path, LocalDirSink(tmp_path), cfg).dataset_id
        for cfg in (PrepConfig(doc_count=5), PrepConfig(doc_count=6), PrepConfig(doc_count=5, validation="summaries"))
    }
    assert len(ids) == 3
    # The URL and the pinned md5 do not change the content, so they do not change the id.
    same = PrepConfig(doc_count=5, source_url="http://mirror.example/dataset.zip", expected_md5=archive.md5)
    assert dataset_id(archive.md5, same) == dataset_id(archive.md5, PrepConfig(doc_count=5))


def test_existing_manifest_means_no_work(archive: SyntheticArchive, tmp_path: Path) -> None:
    config = PrepConfig(doc_count=5)
    first = prepare(archive.path, LocalDirSink(tmp_path), config)
    train = tmp_path / first.train.key
    before = train.stat().st_mtime_ns
    second = prepare(archive.path, LocalDirSink(tmp_path), config)
    assert second == first
    assert train.stat().st_mtime_ns == before


def test_broken_manifest_or_missing_output_is_rebuilt(archive: SyntheticArchive, tmp_path: Path) -> None:
    config = PrepConfig(doc_count=5)
    first = prepare(archive.path, LocalDirSink(tmp_path), config)
    (tmp_path / first.train.key).unlink()
    assert prepare(archive.path, LocalDirSink(tmp_path), config) == first
    assert (tmp_path / first.train.key).exists()
    (tmp_path / first.key).write_text("{not json")
    assert prepare(archive.path, LocalDirSink(tmp_path), config) == first


def test_the_manifest_is_written_last(archive: SyntheticArchive, tmp_path: Path) -> None:
    order: list[str] = []

    class Recording(LocalDirSink):
        def open_writer(self, key: str, content_type: str):  # type: ignore[no-untyped-def]
            order.append(key)
            return super().open_writer(key, content_type)

    prepare(archive.path, Recording(tmp_path), PrepConfig(doc_count=3))
    assert [k.split("/", 2)[2] for k in order] == ["train/train.txt", "validation/validation.txt", "manifest.json"]


def test_crlf_documents_are_normalised_like_the_notebook(tmp_path: Path) -> None:
    name = "uksc-2009-0000-000.txt"
    built = build_synthetic_archive(
        tmp_path / "d.zip",
        uk_train_docs=2,
        uk_test_docs=1,
        overrides={f"UK-Abs/train-data/judgement/{name}": "Line one\r\nLine two\rthree — ok\r\n".encode()},
    )
    manifest = prepare(built.path, LocalDirSink(tmp_path / "out"), PrepConfig(doc_count=1))
    data = (tmp_path / "out" / manifest.train.key).read_bytes()
    assert data == ("Line one\nLine two\nthree — ok\n" + SEPARATOR).encode()


# ------------------------------------------------------------------------------------------- failures

TRAIN = "UK-Abs/train-data/judgement/"
FIRST = "uksc-2009-0000-000.txt"
THIRD = "uksc-2011-0074-002.txt"
HELD = "uksc-2021-0000-1000.txt"


@pytest.mark.parametrize(
    ("overrides", "config", "error", "message"),
    [
        ({}, PrepConfig(doc_count=13), DatasetError, r"doc_count=13 but the archive has only 12 documents"),
        ({TRAIN + THIRD: b""}, PrepConfig(doc_count=5), DatasetError, rf"{THIRD}.*is empty \(0 bytes\)"),
        ({TRAIN + THIRD: b" \n\r\n\t "}, PrepConfig(doc_count=5), DatasetError, rf"{THIRD}.*is empty"),
        ({TRAIN + THIRD: b"caf\xe9 au lait"}, PrepConfig(doc_count=5), DatasetError, rf"{THIRD}.*UTF-8 at byte 3"),
        (
            {f"UK-Abs/test-data/judgement/{HELD}": b"\xff"},
            PrepConfig(doc_count=5),
            DatasetError,
            rf"{HELD}.*not valid UTF-8 at byte 0",
        ),
        (
            {f"UK-Abs/train-data/summary/{THIRD}": None},
            PrepConfig(doc_count=5, validation="summaries"),
            DatasetError,
            rf"lacks UK-Abs/train-data/summary/{THIRD}",
        ),
    ],
    ids=["too-few", "empty", "whitespace", "undecodable-train", "undecodable-validation", "missing-summary"],
)
def test_bad_documents_fail_cleanly(
    tmp_path: Path, overrides: dict[str, bytes | None], config: PrepConfig, error: type[PrepError], message: str
) -> None:
    built = build_synthetic_archive(tmp_path / "d.zip", overrides=overrides)
    out = tmp_path / "out"
    with pytest.raises(error, match=message):
        prepare(built.path, LocalDirSink(out), config)
    assert files_under(out) == []


def test_missing_judgement_folder(tmp_path: Path) -> None:
    overrides: dict[str, bytes | None] = {f"{TRAIN}{n}": None for n in build_names(12)}
    built = build_synthetic_archive(tmp_path / "d.zip", overrides=overrides, directory_entries=False)
    with pytest.raises(DatasetError, match="no folder UK-Abs/train-data/judgement"):
        prepare(built.path, LocalDirSink(tmp_path / "out"), PrepConfig(doc_count=1))
    assert files_under(tmp_path / "out") == []


def test_no_held_out_documents(tmp_path: Path) -> None:
    built = build_synthetic_archive(tmp_path / "d.zip", uk_test_docs=0)
    with pytest.raises(DatasetError, match="no folder UK-Abs/test-data/judgement"):
        prepare(built.path, LocalDirSink(tmp_path / "out"), PrepConfig(doc_count=1))
    notes = {"UK-Abs/test-data/judgement/README": b"nothing here\n"}
    built = build_synthetic_archive(tmp_path / "e.zip", uk_test_docs=0, overrides=notes)
    with pytest.raises(DatasetError, match=r"validation=held_out but .* no documents in UK-Abs/test-data/judgement"):
        prepare(built.path, LocalDirSink(tmp_path / "out"), PrepConfig(doc_count=1))


def test_md5_is_checked_before_the_zip_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "dataset.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ChecksumError, match=r"does not match expected_md5 0{32}"):
        prepare(path, LocalDirSink(tmp_path / "out"), PrepConfig(doc_count=1, expected_md5="0" * 32))


def build_names(n: int) -> list[str]:
    from fakes.archive import uk_name

    return [uk_name(i) for i in range(n)]
