"""Archives as common producers write them are prepared; only explicit link, device, FIFO and socket entries are not.

The real dataset.zip's producer is unknown, so each producer's own output is used: Python's ``zipfile.writestr``
(permission bits and no file-type bits, ``0o600``), the ``zip`` command line (Info-ZIP, Debian's ``zip`` package),
and entries made on DOS/Windows (``create_system`` 0: DOS attributes, or ``writestr``'s ``0o600`` as Python on
Windows writes it). Each archive holds the same documents, so each must give the same training text.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from fakes.archive import FIXED_DATE, SyntheticArchive, build_synthetic_archive, raw_entry, write_zip
from lambdas.dataset_prep import ArchiveError, LocalDirSink, PrepConfig, prepare
from lambdas.dataset_prep.archive import SafeArchive

FILE_ATTRIBUTE_ARCHIVE = 0x20  # what Windows' own zip folders and DOS tools put in external_attr for a file
FILE_ATTRIBUTE_DIRECTORY = 0x10


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> SyntheticArchive:
    return build_synthetic_archive(
        tmp_path_factory.mktemp("source") / "dataset.zip", uk_train_docs=4, uk_test_docs=2, in_abs_train_docs=1,
        in_abs_test_docs=1, in_ext_docs=1, judgment_words=(60, 90),
    )  # fmt: skip


@pytest.fixture(scope="module")
def expected_train(source: SyntheticArchive, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("expected")
    manifest = prepare(source.path, LocalDirSink(out), PrepConfig(doc_count=4))
    return (out / manifest.train.key).read_bytes()


def members(source: SyntheticArchive) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(source.path) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def repack(source: SyntheticArchive, path: Path, entry: Callable[[zipfile.ZipInfo], zipfile.ZipInfo | str]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in members(source):
            zf.writestr(entry(info), data)
    return path


def train_text(archive: Path, tmp_path: Path) -> bytes:
    out = tmp_path / "out"
    manifest = prepare(archive, LocalDirSink(out), PrepConfig(doc_count=4))
    return (out / manifest.train.key).read_bytes()


def dos_entry(attributes: int) -> Callable[[zipfile.ZipInfo], zipfile.ZipInfo]:
    def entry(original: zipfile.ZipInfo) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(original.filename, date_time=FIXED_DATE)
        info.create_system = 0
        info.external_attr = attributes | (FILE_ATTRIBUTE_DIRECTORY if original.is_dir() else 0)
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    return entry


def test_zipfile_writestr_archive(source: SyntheticArchive, expected_train: bytes, tmp_path: Path) -> None:
    # writestr with a name gives ZipInfo's defaults: made on this (Unix) system, mode 0o600, no file-type bits.
    path = repack(source, tmp_path / "writestr.zip", lambda info: info.filename)
    with zipfile.ZipFile(path) as zf:
        document = next(i for i in zf.infolist() if i.filename.endswith(".txt"))
    assert (document.create_system, document.external_attr >> 16) == (3, 0o600)
    assert train_text(path, tmp_path) == expected_train


def test_zip_command_line_archive(source: SyntheticArchive, expected_train: bytes, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    with zipfile.ZipFile(source.path) as zf:
        zf.extractall(tree)
    path = tmp_path / "info-zip.zip"
    subprocess.run([zip_command(), "-q", "-r", "-X", str(path), "dataset"], cwd=tree, check=True)
    with zipfile.ZipFile(path) as zf:
        document = next(i for i in zf.infolist() if i.filename.endswith(".txt"))
    assert document.create_system == 3 and stat.S_ISREG(document.external_attr >> 16)
    assert train_text(path, tmp_path) == expected_train


@pytest.mark.parametrize(
    "attributes",
    # zipfile writes 0o600 << 16 in place of 0 (ZipFile._open_to_write), so "no attributes" is writestr's case.
    [FILE_ATTRIBUTE_ARCHIVE, 0o600 << 16],
    ids=["dos-attributes", "writestr-on-windows"],
)
def test_dos_made_entries(source: SyntheticArchive, expected_train: bytes, tmp_path: Path, attributes: int) -> None:
    path = repack(source, tmp_path / "dos.zip", dos_entry(attributes))
    assert train_text(path, tmp_path) == expected_train


def test_a_symbolic_link_made_by_the_zip_command_line_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "tree" / "dataset" / "UK-Abs" / "train-data" / "judgement"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("A judgment.\n")
    (folder / "b.txt").symlink_to("/etc/passwd")
    path = tmp_path / "links.zip"
    subprocess.run([zip_command(), "-q", "-r", "--symlinks", str(path), "dataset"], cwd=tmp_path / "tree", check=True)
    with pytest.raises(ArchiveError, match=r"'dataset/UK-Abs/train-data/judgement/b.txt': symbolic link"):
        SafeArchive(path).close()


@pytest.mark.parametrize(
    "kind",
    [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK],
    ids=["fifo", "char-device", "block-device", "socket"],
)
def test_unix_special_files_are_still_refused(tmp_path: Path, kind: int) -> None:
    ok = raw_entry("dataset/UK-Abs/train-data/judgement/a.txt", b"A judgment.\n")
    special = raw_entry("dataset/UK-Abs/train-data/judgement/b.txt", b"", mode=kind | 0o644)
    path = write_zip(tmp_path / "special.zip", [ok, special])
    with pytest.raises(
        ArchiveError, match=rf"'dataset/UK-Abs/train-data/judgement/b.txt': special file \(mode {oct(kind | 0o644)}\)"
    ):
        SafeArchive(path).close()


def zip_command() -> str:
    found = shutil.which("zip")
    if found is None:  # a real producer is the point: never skip, say how to get it
        pytest.fail("the zip command line is missing: install Debian's zip package (apt-get install zip; .ci/run does)")
    return found
