"""Where the outputs go: an S3 bucket (streamed multipart upload) or a local directory.

A :class:`Sink` stores objects under ``/``-separated keys. Objects are written through an
:class:`ObjectWriter` that becomes visible only on :meth:`ObjectWriter.commit` (S3: complete the multipart
upload; local: atomic rename), and disappears without a trace on :meth:`ObjectWriter.abort`.

For the dataset lock (``lock.py``) a sink also writes small objects conditionally: :meth:`Sink.create` only if the
key is absent (S3 ``If-None-Match: *``), :meth:`Sink.replace` and :meth:`Sink.delete_if` only if the object is still
the version read (S3 ``If-Match: <ETag>``). Each returns or takes a *tag* naming that version.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import SinkError, one_line

DEFAULT_PART_SIZE = 8 * 1024 * 1024
_MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
_MAX_READ_BYTES = 16 * 1024 * 1024  # manifests are small; refuse to buffer anything large


class ObjectWriter(ABC):
    """Streams one object. Use as a context manager: commits on success, aborts on an exception."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class Sink(ABC):
    """Storage for the prepared dataset."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where ``key`` lives, for people and for SageMaker (``s3://bucket/key`` or a local path)."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """The object's bytes (at most 16 MiB), or None when it does not exist."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size, or None when it does not exist."""

    @abstractmethod
    def open_writer(self, key: str, content_type: str) -> ObjectWriter:
        """A streaming writer for ``key``; the object appears only when the writer commits."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self.open_writer(key, content_type) as writer:
            writer.write(data)

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object ``key`` if it exists."""

    @abstractmethod
    def create(self, key: str, data: bytes, content_type: str) -> str | None:
        """Write a small object only if ``key`` does not exist, atomically; its tag, or None when it exists."""

    @abstractmethod
    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """A small object's bytes and tag, or None when it does not exist."""

    @abstractmethod
    def replace(self, key: str, data: bytes, content_type: str, tag: str) -> str | None:
        """Overwrite ``key`` only if it is still the version ``tag``, atomically; the new tag, or None."""

    @abstractmethod
    def delete_if(self, key: str, tag: str) -> bool:
        """Delete ``key`` only if it is still the version ``tag``; whether it was deleted."""


# --------------------------------------------------------------------------------------------------- S3


class _S3Writer(ObjectWriter):
    def __init__(self, sink: S3Sink, key: str, content_type: str) -> None:
        self._sink = sink
        self._key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._closed = False

    def _fail(self, action: str, err: Exception) -> SinkError:
        return SinkError(f"S3 {action} failed for {self._sink.uri(self._key)}: {one_line(err)}")

    def write(self, data: bytes) -> None:
        if self._closed:
            raise SinkError(f"write after close for {self._sink.uri(self._key)}")
        part_size = self._sink.part_size
        view = memoryview(data)
        while len(self._buffer) + len(view) >= part_size:
            take = part_size - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
            part, self._buffer = bytes(self._buffer), bytearray()
            self._upload_part(part)
        self._buffer += view

    def _upload_part(self, chunk: bytes) -> None:
        client, bucket = self._sink.client, self._sink.bucket
        try:
            if self._upload_id is None:
                response = client.create_multipart_upload(Bucket=bucket, Key=self._key, ContentType=self._content_type)
                self._upload_id = str(response["UploadId"])
            number = len(self._parts) + 1
            response = client.upload_part(
                Bucket=bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=chunk
            )
        except Exception as err:
            raise self._fail("upload_part", err) from None
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def commit(self) -> None:
        if self._closed:
            return
        client, bucket = self._sink.client, self._sink.bucket
        try:
            if self._upload_id is None:
                client.put_object(
                    Bucket=bucket, Key=self._key, Body=bytes(self._buffer), ContentType=self._content_type
                )
            else:
                if self._buffer:
                    self._upload_part(bytes(self._buffer))
                client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except SinkError:
            self.abort()
            raise
        except Exception as err:
            self.abort()
            raise self._fail("commit", err) from None
        self._buffer = bytearray()
        self._closed = True

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        if self._upload_id is not None:
            # Best effort: a bucket lifecycle rule should remove incomplete uploads left behind.
            with contextlib.suppress(Exception):
                self._sink.client.abort_multipart_upload(
                    Bucket=self._sink.bucket, Key=self._key, UploadId=self._upload_id
                )


class S3Sink(Sink):
    """Writes to ``s3://bucket/<key>`` with a boto3 S3 ``client``.

    Objects larger than ``part_size`` (default 8 MiB) are sent as a multipart upload, one part in memory at a
    time; smaller ones with a single PutObject. Encryption is the bucket's default (no SSE headers are sent).
    """

    def __init__(self, client: Any, bucket: str, *, part_size: int = DEFAULT_PART_SIZE) -> None:
        if not bucket:
            raise SinkError("S3 bucket name is empty")
        if part_size < _MIN_PART_SIZE:
            raise SinkError(f"part_size must be at least {_MIN_PART_SIZE} bytes (S3 minimum), got {part_size}")
        self.client = client
        self.bucket = bucket
        self.part_size = part_size

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @staticmethod
    def _is_missing(err: Exception) -> bool:
        response = getattr(err, "response", None)
        if not isinstance(response, dict):
            return False
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def size(self, key: str) -> int | None:
        # ListObjectsV2 rather than HeadObject: with s3:ListBucket granted only for a prefix (a condition on
        # s3:prefix), S3 answers HeadObject/GetObject of a missing key with 403, not 404. Listing with the key
        # itself as the prefix returns it first when it exists.
        try:
            response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except Exception as err:
            raise SinkError(f"S3 list_objects_v2 failed for {self.uri(key)}: {one_line(err)}") from None
        contents = response.get("Contents", [])
        if contents and contents[0].get("Key") == key:
            return int(contents[0]["Size"])
        return None

    def read(self, key: str) -> bytes | None:
        found = self.read_tagged(key)
        return None if found is None else found[0]

    def open_writer(self, key: str, content_type: str) -> ObjectWriter:
        return _S3Writer(self, key, content_type)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)  # S3 answers 204 for a missing key too
        except Exception as err:
            raise SinkError(f"S3 delete_object failed for {self.uri(key)}: {one_line(err)}") from None

    @staticmethod
    def _condition_failed(err: Exception) -> bool:
        """S3's answers to a conditional write that did not hold: 412 (the condition is false), 409 (a concurrent
        conditional write to the key won; S3 says to retry), 404 (If-Match on a key that is gone)."""
        response = getattr(err, "response", None)
        if not isinstance(response, dict):
            return False
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404")

    def _put_if(self, key: str, data: bytes, content_type: str, **condition: str) -> str | None:
        """PutObject under ``condition`` (IfNoneMatch or IfMatch): the new ETag, or None when the condition failed."""
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **condition
            )
        except Exception as err:
            if self._condition_failed(err):
                return None
            raise SinkError(f"S3 conditional put_object failed for {self.uri(key)}: {one_line(err)}") from None
        return str(response["ETag"])

    def create(self, key: str, data: bytes, content_type: str) -> str | None:
        return self._put_if(key, data, content_type, IfNoneMatch="*")

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        size = self.size(key)  # see size(): a missing key may answer 403 to GetObject
        if size is None:
            return None
        if size > _MAX_READ_BYTES:
            raise SinkError(f"{self.uri(key)} is larger than {_MAX_READ_BYTES} bytes")
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                return bytes(body.read(_MAX_READ_BYTES + 1)), str(response["ETag"])
        except Exception as err:
            if self._is_missing(err) or self.size(key) is None:  # deleted since it was listed
                return None
            raise SinkError(f"S3 get_object failed for {self.uri(key)}: {one_line(err)}") from None

    def replace(self, key: str, data: bytes, content_type: str, tag: str) -> str | None:
        return self._put_if(key, data, content_type, IfMatch=tag)

    def delete_if(self, key: str, tag: str) -> bool:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=tag)
        except Exception as err:
            if self._condition_failed(err):
                return False
            raise SinkError(f"S3 conditional delete_object failed for {self.uri(key)}: {one_line(err)}") from None
        return True


# ------------------------------------------------------------------------------------------ local directory


class _LocalWriter(ObjectWriter):
    def __init__(self, final: Path) -> None:
        self._final = final
        self._partial = final.with_name(f".{final.name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self._partial.open("wb")
        except OSError as err:
            raise SinkError(f"cannot write {final}: {one_line(err)}") from None
        self._closed = False

    def write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as err:
            raise SinkError(f"cannot write {self._final}: {one_line(err)}") from None

    def commit(self) -> None:
        if self._closed:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._partial.replace(self._final)
        except OSError as err:
            self.abort()
            raise SinkError(f"cannot write {self._final}: {one_line(err)}") from None
        self._closed = True

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fh.close()
        self._partial.unlink(missing_ok=True)


class LocalDirSink(Sink):
    """Writes ``<key>`` as the file ``path/<key>``; e.g. ``path/datasets/<id>/train/train.txt``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def path_for(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("..", ".") for p in parts) or "\\" in key:
            raise SinkError(f"invalid key {key!r}")
        return self.path.joinpath(*[p for p in parts if p])

    def uri(self, key: str) -> str:
        path = str(self.path_for(key))
        return path + "/" if key.endswith("/") else path

    def read(self, key: str) -> bytes | None:
        path = self.path_for(key)
        try:
            if path.stat().st_size > _MAX_READ_BYTES:
                raise SinkError(f"{path} is larger than {_MAX_READ_BYTES} bytes")
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise SinkError(f"cannot read {path}: {one_line(err)}") from None

    def size(self, key: str) -> int | None:
        try:
            path = self.path_for(key)
            return path.stat().st_size if path.is_file() else None
        except FileNotFoundError:
            return None

    def open_writer(self, key: str, content_type: str) -> ObjectWriter:
        return _LocalWriter(self.path_for(key))

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise SinkError(f"cannot delete {path}: {one_line(err)}") from None

    # The conditional operations hold an exclusive flock on the object's folder, so that a compare and the swap
    # that follows are one step for every process using them on this file system; a plain create is a hard link,
    # which fails when the name exists.

    @contextlib.contextmanager
    def _folder_lock(self, path: Path) -> Iterator[None]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.parent, os.O_RDONLY)
        except OSError as err:
            raise SinkError(f"cannot lock {path.parent}: {one_line(err)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    @staticmethod
    def _tag(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def _write_new(self, path: Path, data: bytes) -> Path:
        staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        try:
            staged.write_bytes(data)
        except OSError as err:
            staged.unlink(missing_ok=True)
            raise SinkError(f"cannot write {path}: {one_line(err)}") from None
        return staged

    def create(self, key: str, data: bytes, content_type: str) -> str | None:
        path = self.path_for(key)
        with self._folder_lock(path):
            staged = self._write_new(path, data)
            try:
                os.link(staged, path)
            except FileExistsError:
                return None
            except OSError as err:
                raise SinkError(f"cannot create {path}: {one_line(err)}") from None
            finally:
                staged.unlink(missing_ok=True)
        return self._tag(data)

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        data = self.read(key)
        return None if data is None else (data, self._tag(data))

    def replace(self, key: str, data: bytes, content_type: str, tag: str) -> str | None:
        path = self.path_for(key)
        with self._folder_lock(path):
            current = self.read(key)
            if current is None or self._tag(current) != tag:
                return None
            staged = self._write_new(path, data)
            try:
                staged.replace(path)
            except OSError as err:
                staged.unlink(missing_ok=True)
                raise SinkError(f"cannot replace {path}: {one_line(err)}") from None
        return self._tag(data)

    def delete_if(self, key: str, tag: str) -> bool:
        path = self.path_for(key)
        with self._folder_lock(path):
            current = self.read(key)
            if current is None or self._tag(current) != tag:
                return False
            try:
                path.unlink()
            except OSError as err:
                raise SinkError(f"cannot delete {path}: {one_line(err)}") from None
        return True
