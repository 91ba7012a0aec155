"""One writer per dataset: a lock object created with a conditional write.

Two runs of the same dataset at once (the deploy-time trigger and a training run's first step, say) would write the
same keys, and the clean-up of a failing one could delete what the other is about to publish. Without reserved
concurrency nothing else stops them, so the writer first creates ``datasets/<id>/.lock`` only if it is absent
(S3 ``If-None-Match: *``, locally an atomic hard link). The lock holds an owner id and an expiry. A run that finds it
waits: for the manifest (then it reuses the dataset and writes nothing), or for the lock to go (its holder failed and
cleaned up; then it tries again). A lock past its expiry belongs to a run that was killed (a Lambda timeout leaves
no time to clean up): it is taken over with a compare-and-swap (S3 ``If-Match: <ETag>``), so two waiters cannot both
take it. The holder renews its lease the same way just before it publishes the manifest, and stops without touching
anything if that fails. All of this is safe only where the store enforces the conditions; S3 does (and so does the
moto version the tests run against: tests/prep/test_single_flight.py checks it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import SinkError
from .progress import Reporter
from .sinks import Sink

LOCK_NAME = ".lock"
_CONTENT_TYPE = "application/json"
# A Lambda run ends within its 900 s maximum timeout, so a lease longer than that outlives every holder that is
# still running; the CLI's processing after the download takes seconds.
DEFAULT_LEASE_SECONDS = 960.0


class LockLostError(SinkError):
    """This run's lease ran out and another run took the lock: it writes the dataset, this one must not."""


@dataclass(frozen=True)
class LockPolicy:
    """``lease_seconds``: how long a lock protects its holder. ``wait_seconds``: how long a run waits for another
    run's dataset before giving up. ``poll_seconds``: how often it looks meanwhile. ``time_left``: the seconds the run
    may still spend waiting (a Lambda's remaining time less what it needs to stop), asked when the wait begins, since
    the download before it may have taken most of the invocation; None: no limit but ``wait_seconds``."""

    lease_seconds: float = DEFAULT_LEASE_SECONDS
    wait_seconds: float = 600.0
    poll_seconds: float = 5.0
    clock: Callable[[], float] = field(default=time.time, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    time_left: Callable[[], float] | None = field(default=None, compare=False)

    def wait_budget(self) -> float:
        """How long a wait that begins now may last."""
        if self.time_left is None:
            return self.wait_seconds
        return max(0.0, min(self.wait_seconds, self.time_left()))


def lock_key(prefix: str) -> str:
    return prefix + LOCK_NAME


@dataclass
class DatasetLock:
    """The lock this run holds on ``prefix``."""

    sink: Sink
    prefix: str
    owner: str
    tag: str
    policy: LockPolicy

    @property
    def key(self) -> str:
        return lock_key(self.prefix)

    def renew(self) -> None:
        """Extend the lease if the lock is still this run's; raise :class:`LockLostError` when another run took it."""
        tag = self.sink.replace(self.key, _body(self.owner, self.policy), _CONTENT_TYPE, self.tag)
        if tag is None:
            raise LockLostError(
                f"another run took the lock {self.sink.uri(self.key)} after this run's lease of "
                f"{self.policy.lease_seconds:g} s ran out; it prepares the dataset: run again to reuse it"
            )
        self.tag = tag

    def release(self) -> None:
        self.sink.delete_if(self.key, self.tag)


def _body(owner: str, policy: LockPolicy) -> bytes:
    expires = policy.clock() + policy.lease_seconds
    return json.dumps({"owner": owner, "expires": expires}, sort_keys=True).encode()


def _expires(data: bytes) -> float:
    """When a lock expires; a lock that cannot be read counts as expired (no run would write it so)."""
    try:
        value = json.loads(data)["expires"]
        return float(value)
    except (ValueError, KeyError, TypeError):
        return 0.0


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def acquire(
    sink: Sink, prefix: str, policy: LockPolicy, *, is_done: Callable[[], bool], reporter: Reporter
) -> DatasetLock | None:
    """Take the lock on ``prefix``, waiting for another holder as needed; None when ``is_done()`` became true (a
    complete dataset is there: nothing to write). Raises :class:`~.errors.SinkError` when the wait runs out."""
    owner = uuid.uuid4().hex
    key = lock_key(prefix)
    deadline: float | None = None  # set when the wait begins, from the time left then
    budget = 0.0
    announced = False
    retries_at_once = 0  # after the lock went or changed under us; bounded, in case a store misbehaves
    held_until = "unknown"
    while True:
        tag = sink.create(key, _body(owner, policy), _CONTENT_TYPE)
        if tag is not None:
            held = DatasetLock(sink, prefix, owner, tag, policy)
            if is_done():  # finished by another run between our first look and now
                held.release()
                return None
            return held
        if is_done():
            return None
        current = sink.read_tagged(key)
        changed = current is None  # released or cleaned up since our create
        if current is not None:
            data, current_tag = current
            expires = _expires(data)
            held_until = _when(expires)
            if expires <= policy.clock():
                tag = sink.replace(key, _body(owner, policy), _CONTENT_TYPE, current_tag)
                if tag is not None:
                    reporter.info(f"took over the expired lock {sink.uri(key)} (it expired {held_until})")
                    return DatasetLock(sink, prefix, owner, tag, policy)
                changed = True  # another waiter took it first
        if changed and retries_at_once < 3:
            retries_at_once += 1
            continue
        retries_at_once = 0
        if deadline is None:
            budget = policy.wait_budget()
            deadline = policy.clock() + budget
        if not announced:
            reporter.info(f"another run is preparing this dataset (lock {sink.uri(key)}); waiting for it")
            announced = True
        left = deadline - policy.clock()
        if left <= 0:
            raise SinkError(
                f"another run is preparing this dataset (lock {sink.uri(key)}, held until {held_until}) and did "
                f"not finish within {budget:g} s: run again once it has (its dataset is then reused)"
            )
        policy.sleep(min(policy.poll_seconds, left))
