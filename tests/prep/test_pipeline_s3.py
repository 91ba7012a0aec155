"""run(): download from the loopback HTTP server, prepare into moto S3, read everything back through S3."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fakes.archive import (
    SyntheticArchive,
    build_synthetic_archive,
    corrupt_member,
    raw_entry,
    symlink_entry,
)
from fakes.http_server import BlobServer, Fault
from fakes.moto_server import list_keys, list_uploads
from lambdas.dataset_prep import (
    ArchiveError,
    ChecksumError,
    DatasetError,
    DownloadError,
    DownloadPolicy,
    Manifest,
    PrepConfig,
    PrepError,
    S3Sink,
    SinkError,
    run,
)
from tests.prep.helpers import SpyClient, expected_text


def get(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_happy_path_read_back_through_s3(
    http_server: BlobServer, archive: SyntheticArchive, s3: Any, bucket: str, workdir: Path, fast_policy: DownloadPolicy
) -> None:
    config = PrepConfig(doc_count=9, source_url=http_server.url, expected_md5=archive.md5)
    result = run(config, S3Sink(s3, bucket), workdir, policy=fast_policy)
    prefix = result.prefix
    assert prefix == f"datasets/{result.dataset_id}/" and len(result.dataset_id) == 16
    assert list_keys(s3, bucket) == [
        f"{prefix}manifest.json",
        f"{prefix}train/train.txt",
        f"{prefix}validation/validation.txt",
    ]
    assert result.manifest_uri == f"s3://{bucket}/{prefix}manifest.json"
    assert result.train_uri == f"s3://{bucket}/{prefix}train/"
    assert result.validation_uri == f"s3://{bucket}/{prefix}validation/"
    assert (result.reused, result.downloaded) == (False, True)
    manifest = Manifest.from_bytes(get(s3, bucket, result.manifest_key))
    assert manifest == result.manifest
    train = get(s3, bucket, manifest.train.key)
    validation = get(s3, bucket, manifest.validation_output.key)
    assert train == expected_text(archive, "train-data/judgement", archive.uk_train_names[:9])
    assert validation == expected_text(archive, "test-data/judgement", archive.uk_test_names)
    for output, data in ((manifest.train, train), (manifest.validation_output, validation)):
        assert output.size_bytes == len(data)
        assert output.sha256 == hashlib.sha256(data).hexdigest()
    head = s3.head_object(Bucket=bucket, Key=manifest.train.key)
    assert head["ContentType"] == "text/plain; charset=utf-8"
    assert list(workdir.iterdir()) == []  # the archive is removed


def test_rerun_with_md5_downloads_and_writes_nothing(
    http_server: BlobServer, archive: SyntheticArchive, s3: Any, bucket: str, workdir: Path, fast_policy: DownloadPolicy
) -> None:
    config = PrepConfig(doc_count=4, source_url=http_server.url, expected_md5=archive.md5)
    first = run(config, S3Sink(s3, bucket), workdir, policy=fast_policy)
    assert http_server.get_count == 1
    spy = SpyClient(s3)
    second = run(config, S3Sink(spy, bucket), workdir, policy=fast_policy)
    assert http_server.get_count == 1  # no download
    assert spy.writes == []
    assert (second.reused, second.downloaded) == (True, False)
    assert second.manifest == first.manifest and second.manifest_uri == first.manifest_uri


def test_rerun_without_md5_downloads_but_writes_nothing(
    http_server: BlobServer, s3: Any, bucket: str, workdir: Path, fast_policy: DownloadPolicy
) -> None:
    config = PrepConfig(doc_count=4, source_url=http_server.url)
    first = run(config, S3Sink(s3, bucket), workdir, policy=fast_policy)
    spy = SpyClient(s3)
    second = run(config, S3Sink(spy, bucket), workdir, policy=fast_policy)
    assert http_server.get_count == 2
    assert spy.writes == []
    assert (second.reused, second.downloaded) == (True, True)
    assert second.manifest == first.manifest


def test_reruns_are_byte_identical(
    http_server: BlobServer, moto_s3: Any, s3: Any, workdir: Path, fast_policy: DownloadPolicy
) -> None:
    config = PrepConfig(doc_count=6, validation="summaries", source_url=http_server.url)
    buckets = [moto_s3.new_bucket(s3), moto_s3.new_bucket(s3)]
    results = [run(config, S3Sink(s3, b), workdir, policy=fast_policy) for b in buckets]
    assert results[0].dataset_id == results[1].dataset_id
    keys = list_keys(s3, buckets[0])
    assert keys == list_keys(s3, buckets[1]) and len(keys) == 3
    for key in keys:
        assert get(s3, buckets[0], key) == get(s3, buckets[1], key)


def test_resume_is_used_end_to_end(
    http_server: BlobServer, archive: SyntheticArchive, s3: Any, bucket: str, workdir: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.queue(Fault.truncate(archive.size // 3), Fault.status(503))
    config = PrepConfig(doc_count=3, source_url=http_server.url, expected_md5=archive.md5)
    result = run(config, S3Sink(s3, bucket), workdir, policy=fast_policy)
    assert result.manifest.archive_md5 == archive.md5
    assert [r.range for r in http_server.requests] == [
        None,
        f"bytes={archive.size // 3}-",
        f"bytes={archive.size // 3}-",
    ]
    assert [r.status for r in http_server.requests] == [200, 503, 206]


# ------------------------------------------------------------------------------------------ failures


def assert_nothing_written(s3: Any, bucket: str) -> None:
    assert list_keys(s3, bucket) == []
    assert list_uploads(s3, bucket) == []


def hostile_archive(case: str, tmp: Path, archive: SyntheticArchive) -> tuple[bytes, type[PrepError], str]:
    def built(**kwargs: Any) -> bytes:
        return build_synthetic_archive(tmp / f"{case}.zip", **kwargs).data

    if case == "truncated-zip":
        return archive.data[: archive.size // 2], ArchiveError, "not a readable zip archive"
    if case == "not-a-zip":
        return b"<html>503 Service Unavailable</html>", ArchiveError, "not a readable zip archive"
    if case == "corrupt-member":
        corrupt = tmp / "corrupt.zip"
        corrupt.write_bytes(archive.data)
        corrupt_member(corrupt, archive.member_name(f"UK-Abs/train-data/judgement/{archive.uk_train_names[1]}"))
        return corrupt.read_bytes(), ArchiveError, f"corrupt archive entry .*{archive.uk_train_names[1]}"
    if case == "symlink":
        link = symlink_entry("dataset/UK-Abs/train-data/judgement/zz.txt")
        return built(extra=[link]), ArchiveError, "symbolic link"
    if case == "bomb":
        bomb = raw_entry("dataset/UK-Abs/train-data/judgement/zz.txt", b"A" * (8 << 20))
        return built(extra=[bomb]), ArchiveError, "compression ratio"
    if case == "no-judgement-folder":
        data = built(uk_train_docs=0, directory_entries=False)
        return data, DatasetError, "no folder UK-Abs/train-data/judgement"
    if case == "undecodable":
        bad = {"UK-Abs/train-data/judgement/uksc-2010-0037-001.txt": b"ok \xff"}
        return built(overrides=bad), DatasetError, "uksc-2010-0037-001.txt.*not valid UTF-8 at byte 3"
    if case == "empty-held-out":
        empty = {"UK-Abs/test-data/judgement/uksc-2021-0000-1000.txt": b"\n"}
        return built(overrides=empty), DatasetError, "uksc-2021-0000-1000.txt.*is empty"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "truncated-zip",
        "not-a-zip",
        "corrupt-member",
        "symlink",
        "bomb",
        "no-judgement-folder",
        "undecodable",
        "empty-held-out",
    ],
)
def test_bad_archives_leave_nothing(
    case: str,
    archive: SyntheticArchive,
    tmp_path: Path,
    s3: Any,
    bucket: str,
    workdir: Path,
    fast_policy: DownloadPolicy,
) -> None:
    data, error, message = hostile_archive(case, tmp_path, archive)
    with BlobServer(data) as server:
        config = PrepConfig(doc_count=5, source_url=server.url)
        with pytest.raises(error, match=message):
            run(config, S3Sink(s3, bucket), workdir, policy=fast_policy)
    assert_nothing_written(s3, bucket)
    assert list(workdir.iterdir()) == []


def test_wrong_checksum_is_refused_before_opening(
    http_server: BlobServer, archive: SyntheticArchive, s3: Any, bucket: str, workdir: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.always = Fault.wrong_bytes()
    config = PrepConfig(doc_count=5, source_url=http_server.url, expected_md5=archive.md5)
    with pytest.raises(ChecksumError, match=f"does not match expected_md5 {archive.md5}"):
        run(config, S3Sink(s3, bucket), workdir, policy=fast_policy)
    assert_nothing_written(s3, bucket)


def test_doc_count_above_available_names_doc_count(
    http_server: BlobServer, s3: Any, bucket: str, workdir: Path, fast_policy: DownloadPolicy
) -> None:
    config = PrepConfig(doc_count=693, source_url=http_server.url)
    with pytest.raises(DatasetError, match="doc_count=693 but the archive has only 12 documents"):
        run(config, S3Sink(s3, bucket), workdir, policy=fast_policy)
    assert_nothing_written(s3, bucket)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.status(500), r"failed after 3 attempts .*HTTP 500"),
        (Fault.truncate(100), r"connection closed after \d+ of \d+ bytes"),
        (Fault.drop(), r"failed after 3 attempts"),
        (Fault.status(403), r"HTTP 403"),
    ],
    ids=["500", "truncated", "dropped", "403"],
)
def test_network_failures_leave_nothing(
    http_server: BlobServer,
    s3: Any,
    bucket: str,
    workdir: Path,
    fast_policy: DownloadPolicy,
    fault: Fault,
    message: str,
) -> None:
    http_server.always = fault
    config = PrepConfig(doc_count=5, source_url=http_server.url)
    with pytest.raises(DownloadError, match=message):
        run(config, S3Sink(s3, bucket), workdir, policy=replace(fast_policy, max_attempts=3))
    assert_nothing_written(s3, bucket)
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    ("call", "key_part"),
    [("put_object", "validation.txt"), ("put_object", "manifest.json"), ("put_object", "train.txt")],
)
def test_s3_failure_mid_way_removes_what_was_written(
    archive: SyntheticArchive, s3: Any, bucket: str, tmp_path: Path, call: str, key_part: str
) -> None:
    spy = SpyClient(s3, fail_on=(call, 1), key_filter=key_part)
    config = PrepConfig(doc_count=5)
    with pytest.raises(SinkError, match=f"S3 commit failed for s3://{bucket}/datasets/.*{key_part}.*injected"):
        from lambdas.dataset_prep import prepare

        prepare(archive.path, S3Sink(spy, bucket), config)
    assert_nothing_written(s3, bucket)


def test_multipart_upload_failure_aborts_and_cleans_up(s3: Any, bucket: str, tmp_path: Path) -> None:
    # train.txt is about 5.5 MB: two parts of 5 MiB; the failure hits the second, after the first was uploaded.
    big = build_synthetic_archive(
        tmp_path / "big.zip", uk_train_docs=3, uk_test_docs=1, judgment_words=(330_000, 330_000),
        in_abs_train_docs=0, in_abs_test_docs=0, in_ext_docs=0, compresslevel=1,
    )  # fmt: skip
    spy = SpyClient(s3, fail_on=("upload_part", 2))
    from lambdas.dataset_prep import prepare

    with pytest.raises(SinkError, match=r"S3 upload_part failed .*train\.txt: injected failure"):
        prepare(big.path, S3Sink(spy, bucket, part_size=5 * 1024 * 1024), PrepConfig(doc_count=3))
    uploaded = next(key for call, key in spy.writes if call == "create_multipart_upload")
    assert ("abort_multipart_upload", uploaded) in spy.calls
    assert_nothing_written(s3, bucket)
    # And without the fault the same archive goes through as a multipart upload.
    spy = SpyClient(s3)
    manifest = prepare(big.path, S3Sink(spy, bucket, part_size=5 * 1024 * 1024), PrepConfig(doc_count=3))
    parts = [c for c in spy.calls if c[0] == "upload_part"]
    assert len(parts) == 2 == -(-manifest.train.size_bytes // (5 * 1024 * 1024))
    data = get(s3, bucket, manifest.train.key)
    assert hashlib.sha256(data).hexdigest() == manifest.train.sha256
    assert data == expected_text(big, "train-data/judgement", big.uk_train_names)
