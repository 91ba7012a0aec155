"""SafeArchive: hostile and broken zips are refused with a message naming the entry or the cap."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from fakes.archive import (
    SyntheticArchive,
    build_synthetic_archive,
    corrupt_member,
    mark_encrypted,
    raw_entry,
    symlink_entry,
    truncate_file,
    write_zip,
)
from lambdas.dataset_prep import ArchiveError, DatasetError, Limits
from lambdas.dataset_prep.archive import SafeArchive

OK = raw_entry("dataset/UK-Abs/train-data/judgement/a.txt", b"A judgment.\n")


def open_archive(path: Path, limits: Limits | None = None) -> SafeArchive:
    archive = SafeArchive(path, limits)
    archive.close()
    return archive


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "absolute path"),
        ("C:/Windows/win.ini", "absolute path"),
        ("dataset/../../evil.txt", "'..' path component"),
        ("dataset/UK-Abs/train-data/judgement/../../../x.txt", "'..' path component"),
        ("dataset\\UK-Abs\\evil.txt", "backslash"),
        ("dataset//UK-Abs/x.txt", "empty or '.' path component"),
        ("dataset/./UK-Abs/x.txt", "empty or '.' path component"),
    ],
)
def test_unsafe_names_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    path = write_zip(tmp_path / "bad.zip", [OK, raw_entry(name)])
    with pytest.raises(ArchiveError, match=reason) as info:
        open_archive(path)
    assert repr(name) in str(info.value)


def test_symlink_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bad.zip", [OK, symlink_entry("dataset/UK-Abs/train-data/judgement/b.txt")])
    with pytest.raises(ArchiveError, match="symbolic link"):
        open_archive(path)


def test_special_file_is_refused(tmp_path: Path) -> None:
    fifo = raw_entry("dataset/UK-Abs/fifo", b"", mode=stat.S_IFIFO | 0o644)
    with pytest.raises(ArchiveError, match="special file"):
        open_archive(write_zip(tmp_path / "bad.zip", [OK, fifo]))


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bad.zip", [OK, raw_entry(OK[0].filename, b"other text\n")])
    with pytest.raises(ArchiveError, match="duplicate archive entry"):
        open_archive(path)


def test_encrypted_entry_is_refused(tmp_path: Path) -> None:
    name = "dataset/UK-Abs/train-data/judgement/s.txt"
    path = write_zip(tmp_path / "bad.zip", [OK, raw_entry(name, b"xx")])
    mark_encrypted(path, name)
    with pytest.raises(ArchiveError, match="encrypted"):
        open_archive(path)


def test_entry_count_cap(archive: SyntheticArchive) -> None:
    with pytest.raises(ArchiveError, match="max_entries=10"):
        open_archive(archive.path, Limits(max_entries=10))


def test_member_size_cap(archive: SyntheticArchive) -> None:
    with pytest.raises(ArchiveError, match="max_member_bytes=1000"):
        open_archive(archive.path, Limits(max_member_bytes=1000))


def test_total_size_cap(archive: SyntheticArchive) -> None:
    with pytest.raises(ArchiveError, match="max_total_bytes=20000"):
        open_archive(archive.path, Limits(max_total_bytes=20_000))


def test_zip_bomb_ratio_cap(tmp_path: Path) -> None:
    bomb = raw_entry("dataset/UK-Abs/train-data/judgement/bomb.txt", b"\0" * (2 << 20))
    with pytest.raises(ArchiveError, match=r"compression ratio \d+, above max_ratio=100"):
        open_archive(write_zip(tmp_path / "bomb.zip", [OK, bomb]))


def test_overall_ratio_cap(tmp_path: Path) -> None:
    entries = [raw_entry(f"dataset/UK-Abs/x/{i}.txt", b"a" * 200_000) for i in range(8)]
    with pytest.raises(ArchiveError, match="overall compression ratio"):
        open_archive(write_zip(tmp_path / "many.zip", entries))


def test_truncated_zip_is_not_readable(archive: SyntheticArchive, tmp_path: Path) -> None:
    path = tmp_path / "dataset.zip"
    path.write_bytes(archive.data)
    truncate_file(path, archive.size // 2)
    with pytest.raises(ArchiveError, match="not a readable zip archive"):
        open_archive(path)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "dataset.zip"
    path.write_bytes(b"<html>Rate limited</html>")
    with pytest.raises(ArchiveError, match=r"dataset\.zip is not a readable zip archive"):
        open_archive(path)


def test_corrupt_member_is_reported_when_read(archive: SyntheticArchive, tmp_path: Path) -> None:
    path = tmp_path / "dataset.zip"
    path.write_bytes(archive.data)
    member = archive.member_name(f"UK-Abs/train-data/judgement/{archive.uk_train_names[0]}")
    corrupt_member(path, member)
    with SafeArchive(path) as safe:
        info = safe.member("train-data/judgement", archive.uk_train_names[0])
        assert info is not None
        with pytest.raises(ArchiveError, match="corrupt archive entry") as err:
            b"".join(safe.iter_bytes(info))
    assert archive.uk_train_names[0] in str(err.value)


def test_unsupported_compression_is_refused_when_read(tmp_path: Path) -> None:
    entry = raw_entry("dataset/UK-Abs/train-data/judgement/a.txt", b"text\n", compress_type=zipfile.ZIP_BZIP2)
    with SafeArchive(write_zip(tmp_path / "bz.zip", [entry])) as safe:
        info = safe.member("train-data/judgement", "a.txt")
        assert info is not None
        with pytest.raises(ArchiveError, match="unsupported compression method 12"):
            list(safe.iter_bytes(info))


@pytest.mark.parametrize("top", ["", "dataset", "Downloads/dataset-v2"])
def test_root_is_located_whatever_the_prefix(tmp_path: Path, top: str) -> None:
    built = build_synthetic_archive(tmp_path / "d.zip", uk_train_docs=3, uk_test_docs=1, top=top)
    with SafeArchive(built.path) as safe:
        assert safe.root == (f"{top}/" if top else "")
        assert safe.documents("train-data/judgement") == built.uk_train_names


def test_macosx_metadata_is_ignored(tmp_path: Path) -> None:
    extra = [raw_entry("__MACOSX/dataset/UK-Abs/train-data/judgement/._a.txt", b"\0\5\26\7")]
    built = build_synthetic_archive(tmp_path / "d.zip", uk_train_docs=2, uk_test_docs=1, extra=extra)
    with SafeArchive(built.path) as safe:
        assert safe.root == "dataset/"


def test_several_uk_roots_are_ambiguous(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "two.zip", [OK, raw_entry("copy/UK-Abs/train-data/judgement/a.txt")])
    with pytest.raises(DatasetError, match="several UK-Abs/ folders"):
        open_archive(path)


def test_no_uk_root(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "in.zip", [raw_entry("dataset/IN-Abs/train-data/judgement/1.txt")])
    with pytest.raises(DatasetError, match="no UK-Abs/ folder"):
        open_archive(path)


def test_documents_ignore_hidden_and_non_text_and_nested(tmp_path: Path) -> None:
    base = "dataset/UK-Abs/train-data/judgement/"
    entries = [
        raw_entry(base + "b.txt"),
        raw_entry(base + "a.txt"),
        raw_entry(base + ".DS_Store"),
        raw_entry(base + "notes.md"),
        raw_entry(base + "sub/c.txt"),
    ]
    with SafeArchive(write_zip(tmp_path / "d.zip", entries)) as safe:
        assert safe.documents("train-data/judgement") == ["a.txt", "b.txt"]
        with pytest.raises(DatasetError, match="no folder UK-Abs/test-data/judgement"):
            safe.documents("test-data/judgement")
