"""Defensive, streaming access to the dataset zip.

The whole central directory is checked before any member is read: entry count (also pre-checked from
the end-of-central-directory record, before ``zipfile`` builds its index), per-member and total uncompressed
size, compression ratio, absolute paths, ``..``, backslashes, symlinks and other special files (from the Unix mode
of entries made on Unix), encryption and duplicate names. Members are then read one at a time in bounded chunks.
"""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from .config import Limits
from .errors import ArchiveError, DatasetError, one_line

UK_ROOT = "UK-Abs"
READ_CHUNK = 1024 * 1024
_ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_IGNORED_TOP = "__MACOSX/"
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_UNIX = 3  # "version made by" host 3 (Unix): its entries keep the Unix mode in the high bits of external_attr


def _declared_entry_count(path: Path) -> int | None:
    """Entry count from the end-of-central-directory record (zip64 aware), without parsing the directory."""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        tail_len = min(size, 22 + 65535)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        pos = tail.rfind(_EOCD)
        if pos < 0 or pos + 22 > len(tail):
            return None
        count = int(struct.unpack("<H", tail[pos + 10 : pos + 12])[0])
        if count != 0xFFFF:
            return count
        loc = pos - 20
        if loc < 0 or tail[loc : loc + 4] != _EOCD64_LOCATOR:
            return None
        (eocd64_offset,) = struct.unpack("<Q", tail[loc + 8 : loc + 16])
        if eocd64_offset + 56 > size:
            return None
        fh.seek(eocd64_offset)
        record = fh.read(56)
        if record[:4] != _EOCD64:
            return None
        return int(struct.unpack("<Q", record[32:40])[0])


def _check_name(name: str) -> str:
    """Return the reason ``name`` is unsafe, or ''."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        return "absolute path"
    parts = name.rstrip("/").split("/")
    if any(part == ".." for part in parts):
        return "'..' path component"
    if any(part in ("", ".") for part in parts):
        return "empty or '.' path component"
    return ""


def _special_kind(info: zipfile.ZipInfo) -> str:
    """Why the entry is not a regular file or folder ('' when it is one).

    Only an entry made on Unix carries a Unix mode (the high 16 bits of ``external_attr``), and only its file-type
    bits say what it is: ``zipfile.writestr`` writes permission bits alone (``0o600``), which is a regular file, and
    entries made on DOS or Windows (``create_system`` 0) keep DOS attributes there or nothing. Reading such bits as
    a type would refuse valid archives; only explicit link, device, FIFO and socket types are unsafe.
    """
    if info.create_system != _UNIX:
        return ""
    mode = info.external_attr >> 16
    if not stat.S_IFMT(mode) or stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ""
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return f"special file (mode {oct(mode)})"


class SafeArchive:
    """A validated, read-only view of the dataset zip, located at its ``UK-Abs/`` folder.

    ``root`` is whatever single prefix precedes ``UK-Abs/`` (``"dataset/"`` in the real archive, possibly
    ``""``); entries under ``__MACOSX/`` are ignored when locating it.
    """

    def __init__(self, path: Path, limits: Limits | None = None) -> None:
        self.path = path
        self.limits = limits or Limits()
        declared = _declared_entry_count(path)
        if declared is not None and declared > self.limits.max_entries:
            raise ArchiveError(f"{path.name}: {declared} entries, above max_entries={self.limits.max_entries}")
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as err:
            raise ArchiveError(f"{path.name} is not a readable zip archive: {one_line(err)}") from None
        try:
            self._infos = self._validate()
            self.root = self._locate_root()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> SafeArchive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def _validate(self) -> dict[str, zipfile.ZipInfo]:
        limits = self.limits
        infos = self._zip.infolist()
        if len(infos) > limits.max_entries:
            raise ArchiveError(f"{self.path.name}: {len(infos)} entries, above max_entries={limits.max_entries}")
        seen: dict[str, zipfile.ZipInfo] = {}
        total = compressed = 0
        for info in infos:
            name = info.filename
            reason = _check_name(name)
            if reason:
                raise ArchiveError(f"unsafe archive entry {name!r}: {reason}")
            key = name.rstrip("/")
            if key in seen:
                raise ArchiveError(f"duplicate archive entry {name!r}")
            kind = _special_kind(info)
            if kind:
                raise ArchiveError(f"unsafe archive entry {name!r}: {kind}")
            if info.flag_bits & 0x1:
                raise ArchiveError(f"archive entry {name!r} is encrypted")
            if info.file_size > limits.max_member_bytes:
                raise ArchiveError(
                    f"archive entry {name!r} is {info.file_size} bytes uncompressed, "
                    f"above max_member_bytes={limits.max_member_bytes}"
                )
            if info.file_size >= limits.ratio_min_bytes and (
                info.compress_size == 0 or info.file_size / info.compress_size > limits.max_ratio
            ):
                ratio = info.file_size / max(info.compress_size, 1)
                raise ArchiveError(
                    f"archive entry {name!r} has compression ratio {ratio:.0f}, above max_ratio={limits.max_ratio:g}"
                )
            total += info.file_size
            compressed += info.compress_size
            if total > limits.max_total_bytes:
                raise ArchiveError(
                    f"{self.path.name}: uncompressed total exceeds max_total_bytes={limits.max_total_bytes} "
                    f"(at entry {name!r})"
                )
            seen[key] = info
        if total >= limits.ratio_min_bytes and total / max(compressed, 1) > limits.max_ratio:
            raise ArchiveError(
                f"{self.path.name}: overall compression ratio {total / max(compressed, 1):.0f}, "
                f"above max_ratio={limits.max_ratio:g}"
            )
        return seen

    def _locate_root(self) -> str:
        roots: set[str] = set()
        for key in self._infos:
            if key.startswith(_IGNORED_TOP):
                continue
            parts = key.split("/")
            if UK_ROOT in parts[:-1] or (parts[-1] == UK_ROOT and self._infos[key].is_dir()):
                idx = parts.index(UK_ROOT)
                roots.add("".join(part + "/" for part in parts[:idx]))
        if not roots:
            raise DatasetError(f"{self.path.name} has no {UK_ROOT}/ folder: not the Law-AI summarisation dataset")
        if len(roots) > 1:
            listed = ", ".join(repr(r + UK_ROOT + "/") for r in sorted(roots))
            raise DatasetError(f"{self.path.name} has several {UK_ROOT}/ folders: {listed}")
        return roots.pop()

    def _folder_prefix(self, folder: str) -> str:
        return f"{self.root}{UK_ROOT}/{folder.strip('/')}/"

    def documents(self, folder: str) -> list[str]:
        """Sorted file names of the documents (``*.txt``, not hidden) directly in ``UK-Abs/<folder>``.

        Raises :class:`DatasetError` when the folder does not exist in the archive.
        """
        prefix = self._folder_prefix(folder)
        found = False
        names: list[str] = []
        for key, info in self._infos.items():
            if not key.startswith(prefix):
                continue
            found = True
            rest = key[len(prefix) :]
            if "/" in rest or info.is_dir() or rest.startswith(".") or not rest.endswith(".txt"):
                continue
            names.append(rest)
        if not found and prefix.rstrip("/") not in self._infos:
            raise DatasetError(f"archive has no folder {UK_ROOT}/{folder.strip('/')}")
        return sorted(names)

    def member(self, folder: str, name: str) -> zipfile.ZipInfo | None:
        return self._infos.get(self._folder_prefix(folder) + name)

    def iter_bytes(self, info: zipfile.ZipInfo, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """The member's bytes in chunks of at most ``chunk_size``; CRC and size are checked at the end."""
        method = _ALLOWED_METHODS.get(info.compress_type)
        if method is None:
            raise ArchiveError(
                f"archive entry {info.filename!r} uses unsupported compression method {info.compress_type}"
            )
        read = 0
        try:
            with self._zip.open(info) as fh:
                while chunk := fh.read(chunk_size):
                    read += len(chunk)
                    if read > info.file_size:
                        raise ArchiveError(f"archive entry {info.filename!r} is longer than its declared size")
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
            raise ArchiveError(f"corrupt archive entry {info.filename!r}: {one_line(err)}") from None
        if read != info.file_size:
            raise ArchiveError(f"corrupt archive entry {info.filename!r}: {read} of {info.file_size} bytes")
