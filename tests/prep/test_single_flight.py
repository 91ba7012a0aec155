"""Two preps of the same dataset at once, against moto's S3 on loopback: one dataset, complete, written once.

Without reserved concurrency the lock object (lambdas/dataset_prep/lock.py) keeps a second run from writing: it is
created with ``If-None-Match: *`` and taken over or renewed with ``If-Match``. That is only safe where the store
enforces those conditions, so the first test checks that moto's S3 does, and the concurrency scenario is also run
against a client that drops the conditions, where it must fail: the scenario's assertions depend on the backend.
The interleaving is forced with events (no timing): run A stops before its second object until run B has found the
lock and started waiting.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fakes.archive import SyntheticArchive
from fakes.moto_server import MotoServer, list_keys
from lambdas.dataset_prep import (
    LocalDirSink,
    LockLostError,
    LockPolicy,
    Manifest,
    PrepConfig,
    PrepResult,
    Reporter,
    S3Sink,
    SinkError,
    dataset_id,
    dataset_prefix,
    find_existing,
    prepare,
)
from lambdas.dataset_prep.lock import DatasetLock, acquire, lock_key
from lambdas.dataset_prep.prep import prepare_archive
from tests.prep.helpers import Hook, SpyClient

CONFIG = PrepConfig(doc_count=6)
WAIT = 30.0  # seconds an event may take before the test gives up (never reached when the code is right)


class HookedClient(SpyClient):
    """A boto3 client whose calls go through ``hook(name, kwargs)`` first; every call is recorded."""

    def __init__(self, client: Any, hook: Hook | None = None) -> None:
        super().__init__(client, hook=hook)

    def dataset_writes(self) -> list[tuple[str, str]]:
        return [c for c in self.writes if not c[1].endswith("/.lock")]


class IgnoresConditions(HookedClient):
    """What a store that ignores conditional headers would do: the same calls, without the conditions."""

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if not callable(call) or name not in ("put_object", "delete_object"):
            return call

        def unconditional(*args: Any, **kwargs: Any) -> Any:
            kwargs.pop("IfNoneMatch", None)
            kwargs.pop("IfMatch", None)
            return call(*args, **kwargs)

        return unconditional


@dataclass
class Observed:
    keys_while_a_paused: list[str] = field(default_factory=list)
    complete_while_a_paused: bool = True
    results: dict[str, PrepResult | BaseException] = field(default_factory=dict)
    b_dataset_writes: list[tuple[str, str]] = field(default_factory=list)
    b_waited: bool = False
    versions: dict[str, int] = field(default_factory=dict)
    final_keys: list[str] = field(default_factory=list)


def versioned_bucket(moto_s3: MotoServer, s3: Any) -> str:
    bucket = moto_s3.new_bucket(s3)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def two_preps_at_once(
    archive: SyntheticArchive, s3: Any, bucket: str, client_type: type[HookedClient] = HookedClient
) -> Observed:
    observed = Observed()
    prefix = dataset_prefix(dataset_id(archive.md5, CONFIG))
    a_paused, b_progressed, a_finished = threading.Event(), threading.Event(), threading.Event()

    def a_hook(name: str, kwargs: dict[str, Any]) -> None:
        if name == "put_object" and kwargs["Key"].endswith("validation/validation.txt") and not a_paused.is_set():
            a_paused.set()
            assert b_progressed.wait(WAIT), "run B neither waited nor finished"

    def b_sleep(seconds: float) -> None:
        observed.b_waited = True
        b_progressed.set()
        assert a_finished.wait(WAIT), "run A did not finish"

    a_client = client_type(s3, a_hook)
    b_client = client_type(s3)
    a_policy = LockPolicy(poll_seconds=0.01, wait_seconds=WAIT)
    b_policy = LockPolicy(poll_seconds=0.01, wait_seconds=WAIT, sleep=b_sleep)

    def prep(label: str, client: HookedClient, policy: LockPolicy, done: threading.Event) -> None:
        try:
            observed.results[label] = prepare_archive(archive.path, S3Sink(client, bucket), CONFIG, lock_policy=policy)
        except BaseException as err:  # reported by the assertions, not lost in the thread
            observed.results[label] = err
        finally:
            done.set()

    a = threading.Thread(target=prep, args=("a", a_client, a_policy, a_finished))
    a.start()
    assert a_paused.wait(WAIT), "run A never reached its second object"
    observed.keys_while_a_paused = list_keys(s3, bucket)
    ds_id = dataset_id(archive.md5, CONFIG)
    observed.complete_while_a_paused = find_existing(S3Sink(s3, bucket), ds_id, archive.md5) is not None
    b = threading.Thread(target=prep, args=("b", b_client, b_policy, b_progressed))
    b.start()
    b.join(WAIT)
    a.join(WAIT)
    assert not a.is_alive() and not b.is_alive()
    observed.b_dataset_writes = b_client.dataset_writes()
    versions = s3.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions", [])
    for version in versions:
        if not version["Key"].endswith("/.lock"):
            observed.versions[version["Key"]] = observed.versions.get(version["Key"], 0) + 1
    observed.final_keys = list_keys(s3, bucket)
    return observed


def test_moto_s3_enforces_the_conditions_the_lock_relies_on(s3: Any, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    with pytest.raises(ClientError) as put_again:
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"3")
    with pytest.raises(ClientError) as complete_over:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload, IfNoneMatch="*",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )  # fmt: skip
    with pytest.raises(ClientError) as replace_stale:
        s3.put_object(Bucket=bucket, Key="k", Body=b"4", IfMatch='"0123456789abcdef0123456789abcdef"')
    with pytest.raises(ClientError) as delete_stale:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch='"0123456789abcdef0123456789abcdef"')
    for caught in (put_again, complete_over, replace_stale, delete_stale):
        assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"5", IfMatch=first)["ETag"] != first


def test_two_preps_at_once_publish_one_complete_dataset(
    archive: SyntheticArchive, moto_s3: MotoServer, s3: Any
) -> None:
    bucket = versioned_bucket(moto_s3, s3)
    observed = two_preps_at_once(archive, s3, bucket)
    a, b = observed.results["a"], observed.results["b"]
    assert isinstance(a, PrepResult) and isinstance(b, PrepResult), observed.results
    prefix = a.prefix
    # Half-way through run A: its lock and its first, complete object; no manifest, so readers see no dataset.
    assert observed.keys_while_a_paused == [f"{prefix}.lock", f"{prefix}train/train.txt"]
    assert observed.complete_while_a_paused is False
    # Run B found the lock, waited, and reused A's dataset without writing any of it.
    assert (a.reused, b.reused, observed.b_waited) == (False, True, True)
    assert observed.b_dataset_writes == []
    assert b.manifest == a.manifest
    # One dataset: three objects (the lock is gone), each written exactly once, matching the manifest.
    assert observed.final_keys == [
        f"{prefix}manifest.json",
        f"{prefix}train/train.txt",
        f"{prefix}validation/validation.txt",
    ]
    assert observed.versions == dict.fromkeys(observed.final_keys, 1)
    manifest = Manifest.from_bytes(s3.get_object(Bucket=bucket, Key=a.manifest_key)["Body"].read())
    for output in (manifest.train, manifest.validation_output):
        data = s3.get_object(Bucket=bucket, Key=output.key)["Body"].read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (output.size_bytes, output.sha256)


def test_the_scenario_fails_where_the_store_ignores_the_conditions(
    archive: SyntheticArchive, moto_s3: MotoServer, s3: Any
) -> None:
    # The same two runs through a client that drops If-None-Match/If-Match: B takes the "lock" and writes the
    # dataset a second time, which the test above would catch.
    observed = two_preps_at_once(archive, s3, versioned_bucket(moto_s3, s3), IgnoresConditions)
    b = observed.results["b"]
    assert isinstance(b, PrepResult) and b.reused is False
    assert observed.b_dataset_writes != []
    assert max(observed.versions.values()) == 2


def lock_body(expires: float) -> bytes:
    return json.dumps({"owner": "someone-else", "expires": expires}).encode()


def test_an_expired_lock_is_taken_over(archive: SyntheticArchive, s3: Any, bucket: str) -> None:
    # A run killed by its timeout leaves its lock: once the lease is over the next run builds the dataset.
    prefix = dataset_prefix(dataset_id(archive.md5, CONFIG))
    s3.put_object(Bucket=bucket, Key=lock_key(prefix), Body=lock_body(expires=1.0))
    manifest = prepare(archive.path, S3Sink(s3, bucket), CONFIG)
    assert list_keys(s3, bucket, prefix) == [manifest.key, manifest.train.key, manifest.validation_output.key]


def test_a_live_lock_makes_the_run_wait_and_then_stop_in_one_line(
    archive: SyntheticArchive, s3: Any, bucket: str
) -> None:
    prefix = dataset_prefix(dataset_id(archive.md5, CONFIG))
    s3.put_object(Bucket=bucket, Key=lock_key(prefix), Body=lock_body(expires=4_102_444_800.0))  # year 2100
    spy = HookedClient(s3)
    sleeps: list[float] = []
    policy = LockPolicy(wait_seconds=0.0, poll_seconds=0.01, sleep=sleeps.append)
    with pytest.raises(SinkError) as caught:
        prepare(archive.path, S3Sink(spy, bucket), CONFIG, lock_policy=policy)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        f"another run is preparing this dataset (lock s3://{bucket}/{prefix}.lock, held until 2100-01-01 00:00:00 "
        "UTC) and did not finish within 0 s: run again once it has (its dataset is then reused)"
    )
    assert spy.dataset_writes() == [] and sleeps == []
    assert list_keys(s3, bucket) == [lock_key(prefix)]  # the other run's lock is left alone


def test_a_waiting_run_builds_once_the_holder_gives_up(archive: SyntheticArchive, s3: Any, bucket: str) -> None:
    # The holder failed and cleaned up (its lock goes with its objects): the waiter takes the lock and builds.
    prefix = dataset_prefix(dataset_id(archive.md5, CONFIG))
    s3.put_object(Bucket=bucket, Key=lock_key(prefix), Body=lock_body(expires=4_102_444_800.0))

    def holder_cleans_up(seconds: float) -> None:
        s3.delete_object(Bucket=bucket, Key=lock_key(prefix))

    policy = LockPolicy(wait_seconds=WAIT, poll_seconds=0.01, sleep=holder_cleans_up)
    manifest = prepare(archive.path, S3Sink(s3, bucket), CONFIG, lock_policy=policy)
    assert list_keys(s3, bucket, prefix) == [manifest.key, manifest.train.key, manifest.validation_output.key]


def test_a_run_whose_lock_was_taken_over_leaves_the_prefix_to_the_new_holder(
    archive: SyntheticArchive, s3: Any, bucket: str
) -> None:
    prefix = dataset_prefix(dataset_id(archive.md5, CONFIG))
    taken_over = lock_body(expires=4_102_444_800.0)

    def another_run_takes_over(name: str, kwargs: dict[str, Any]) -> None:
        if name == "put_object" and kwargs["Key"].endswith("validation/validation.txt"):
            s3.put_object(Bucket=bucket, Key=lock_key(prefix), Body=taken_over)

    with pytest.raises(LockLostError, match=r"another run took the lock .* run again to reuse it"):
        prepare(archive.path, S3Sink(HookedClient(s3, another_run_takes_over), bucket), CONFIG)
    assert list_keys(s3, bucket, prefix) == [
        lock_key(prefix),
        f"{prefix}train/train.txt",
        f"{prefix}validation/validation.txt",
    ]
    assert s3.get_object(Bucket=bucket, Key=lock_key(prefix))["Body"].read() == taken_over


def test_the_local_sink_conditions(tmp_path: Path) -> None:
    sink = LocalDirSink(tmp_path)
    tag = sink.create("datasets/x/.lock", b"first", "application/json")
    assert tag is not None
    assert sink.create("datasets/x/.lock", b"second", "application/json") is None
    assert sink.read_tagged("datasets/x/.lock") == (b"first", tag)
    assert sink.replace("datasets/x/.lock", b"third", "application/json", "stale") is None
    new_tag = sink.replace("datasets/x/.lock", b"third", "application/json", tag)
    assert new_tag is not None and new_tag != tag
    assert sink.delete_if("datasets/x/.lock", tag) is False
    assert sink.delete_if("datasets/x/.lock", new_tag) is True
    assert sink.read_tagged("datasets/x/.lock") is None
    assert [p.name for p in (tmp_path / "datasets" / "x").iterdir()] == []  # no staging files left behind


class Notes(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def test_only_the_first_of_two_waiters_takes_over_an_expired_lock(
    archive: SyntheticArchive, s3: Any, bucket: str
) -> None:
    # Both waiters read the same expired lock (the same ETag) before either replaces it; only the first conditional
    # replace may succeed. Without If-Match on the takeover both would hold the lock and both would write.
    prefix = dataset_prefix(dataset_id(archive.md5, CONFIG))
    key = lock_key(prefix)
    s3.put_object(Bucket=bucket, Key=key, Body=lock_body(expires=1.0))  # a holder killed long ago
    a_at_replace, b_at_replace, a_replaced = threading.Event(), threading.Event(), threading.Event()
    seen_while_b_waits: list[bytes] = []
    a_done = threading.Event()

    def takeover(name: str, kwargs: dict[str, Any]) -> bool:
        # Any write of the lock but its creation (If-None-Match), so that a takeover without If-Match is caught too.
        return name == "put_object" and kwargs.get("Key") == key and "IfNoneMatch" not in kwargs

    def a_hook(name: str, kwargs: dict[str, Any]) -> None:
        if takeover(name, kwargs):
            a_at_replace.set()
            assert b_at_replace.wait(WAIT), "waiter B never came to replace the lock"

    def b_hook(name: str, kwargs: dict[str, Any]) -> None:
        if takeover(name, kwargs):
            b_at_replace.set()  # B read the lock, and its tag, before A replaced it
            assert a_replaced.wait(WAIT), "waiter A never replaced the lock"

    def b_sleep(seconds: float) -> None:  # B waits: the lock must still be A's
        seen_while_b_waits.append(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        a_done.set()  # ... and A's dataset is then complete (is_done below)

    results: dict[str, DatasetLock | BaseException | None] = {}
    notes = {"a": Notes(), "b": Notes()}

    def wait_for(label: str, hook: Hook, sleep: Callable[[float], None]) -> None:
        policy = LockPolicy(poll_seconds=0.01, wait_seconds=WAIT, sleep=sleep)
        try:
            results[label] = acquire(
                S3Sink(HookedClient(s3, hook), bucket), prefix, policy, is_done=a_done.is_set, reporter=notes[label]
            )
        except BaseException as err:  # reported by the assertions, not lost in the thread
            results[label] = err
        finally:
            if label == "a":
                a_replaced.set()

    a = threading.Thread(target=wait_for, args=("a", a_hook, lambda s: None))
    b = threading.Thread(target=wait_for, args=("b", b_hook, b_sleep))
    a.start()
    b.start()
    a.join(WAIT)
    b.join(WAIT)
    assert not a.is_alive() and not b.is_alive()
    a_lock = results["a"]
    assert isinstance(a_lock, DatasetLock), results
    assert results["b"] is None, results  # B waited, then found the dataset done: it never held the lock
    owners = [json.loads(body)["owner"] for body in seen_while_b_waits]
    assert owners and set(owners) == {a_lock.owner}
    assert [line for line in notes["b"].lines if line.startswith("took over")] == []
    assert [line for line in notes["a"].lines if line.startswith("took over")] != []


def test_a_run_whose_lease_was_taken_over_leaves_the_new_holders_lock_and_outputs_when_it_fails(
    archive: SyntheticArchive, s3: Any, bucket: str
) -> None:
    # Run A's lease runs out while it writes (lease 0 here); run B takes the lock over and starts writing; then A's
    # upload fails. A's clean-up must leave B's lock and B's objects alone, and B must publish its dataset.
    prefix = dataset_prefix(dataset_id(archive.md5, CONFIG))
    a_paused, b_writing, a_finished = threading.Event(), threading.Event(), threading.Event()
    results: dict[str, PrepResult | BaseException] = {}
    a_notes = Notes()

    def validation_upload(name: str, kwargs: dict[str, Any]) -> bool:
        return name == "put_object" and str(kwargs.get("Key", "")).endswith("validation/validation.txt")

    def a_hook(name: str, kwargs: dict[str, Any]) -> None:
        if validation_upload(name, kwargs):
            a_paused.set()
            assert b_writing.wait(WAIT), "run B never started writing"
            raise ConnectionResetError("A's upload fails")

    def b_hook(name: str, kwargs: dict[str, Any]) -> None:
        if validation_upload(name, kwargs):  # B holds the lock and has written its train.txt
            b_writing.set()
            assert a_finished.wait(WAIT), "run A never finished"

    def prep(label: str, hook: Hook, policy: LockPolicy, done: threading.Event,
             reporter: Reporter) -> None:  # fmt: skip
        try:
            sink = S3Sink(HookedClient(s3, hook), bucket)
            results[label] = prepare_archive(archive.path, sink, CONFIG, lock_policy=policy, reporter=reporter)
        except BaseException as err:  # reported by the assertions, not lost in the thread
            results[label] = err
        finally:
            done.set()

    a_policy = LockPolicy(lease_seconds=0.0, poll_seconds=0.01, wait_seconds=WAIT)
    b_policy = LockPolicy(poll_seconds=0.01, wait_seconds=WAIT)
    a = threading.Thread(target=prep, args=("a", a_hook, a_policy, a_finished, a_notes))
    a.start()
    assert a_paused.wait(WAIT), "run A never reached its second object"
    b = threading.Thread(target=prep, args=("b", b_hook, b_policy, threading.Event(), Reporter()))
    b.start()
    a.join(WAIT)
    b.join(WAIT)
    assert not a.is_alive() and not b.is_alive()
    assert isinstance(results["a"], SinkError) and "A's upload fails" in str(results["a"]), results
    b_result = results["b"]
    assert isinstance(b_result, PrepResult) and b_result.reused is False, results
    assert list_keys(s3, bucket, prefix) == [
        f"{prefix}manifest.json",
        f"{prefix}train/train.txt",
        f"{prefix}validation/validation.txt",
    ]
    assert find_existing(S3Sink(s3, bucket), b_result.dataset_id, archive.md5) == b_result.manifest
    assert any("lock" in line and "clean" in line for line in a_notes.lines), a_notes.lines
