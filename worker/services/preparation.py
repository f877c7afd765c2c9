"""The part of intake that needs no transaction: parse and write blobs, optionally in workers.

Parsing is the one CPU-heavy step and blob writes wait on the disk; running both in worker
processes while the main process commits the previous batch keeps both cores busy.
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import logging
import multiprocessing
import operator
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing.util import Finalize
from typing import Any, Protocol

from worker.errors import LeadmailError, ParseError
from worker.mail.addresses import email_key
from worker.mail.classify import Classification
from worker.mail.message import Address, Attachment, InboundMessage, RawMessage, ReportPart
from worker.mail.parse import normalize, parse
from worker.mail.verdict import MailPolicy, Sender, Verdict, judge
from worker.routing.facts import MessageFacts, message_facts
from worker.store import inbound
from worker.store.blobs import BlobRef, BlobStore, Stored, libc, sha256_hex

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message understood and with its blobs durable: all its transaction needs.

    Built once, after the blob writes (``_prepared``). ``raw.data`` and attachment payloads
    are dropped by then, so that handing a batch back from a worker process costs little.
    """

    raw: RawMessage
    size: int
    raw_sha256: str
    msg: InboundMessage
    verdict: Verdict
    # The message row's columns that need no database (store.inbound.message_row), so the
    # committing process (the bottleneck of a bulk ingest) only adds ids and the outcome.
    row: Mapping[str, Any]
    attachments: tuple[inbound.AttachmentRow, ...]
    # Everyone in From, To, Cc and Reply-To but us: who may later reply into its thread.
    participant_keys: tuple[str, ...]
    # The routing rules' view of it (``message_facts``), made here and not in the one
    # committing process; None when its verdict says it can make no lead (rules never see it).
    facts: MessageFacts | None
    # The pack records written for it (raw and attachments the database did not know yet):
    # its transaction names them (store.blobs.record) when it stores the message.
    blobs: tuple[BlobRef, ...] = ()

    @property
    def content_hash(self) -> str:
        return self.msg.content_hash


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A message that could not be understood: it is quarantined under its raw digest."""

    raw: RawMessage
    size: int
    raw_sha256: str
    content_hash: str
    error: LeadmailError
    blobs: tuple[BlobRef, ...] = ()


@dataclass(frozen=True, slots=True)
class _Understood:
    """A parsed message before its blobs are written (and before its payloads are dropped)."""

    msg: InboundMessage
    verdict: Verdict
    participant_keys: tuple[str, ...]


def content_hash(data: bytes) -> str:
    try:
        return sha256_hex(normalize(data))
    except ParseError:
        return sha256_hex(data)  # not mail at all: it will be quarantined under its bytes


def _understand(raw: RawMessage, max_bytes: int, policy: MailPolicy) -> _Understood | ParseError:
    """Parse and judge a message: every decision about it that needs no database."""
    size = _size(raw)
    if size > max_bytes or raw.size is not None:
        kept = "; its headers are kept" if raw.size is not None else ""
        return ParseError(
            f"message of {size} bytes exceeds max_message_bytes ({max_bytes}){kept}", size
        )
    try:
        msg = parse(raw.data)
        people = (*msg.from_, *msg.to, *msg.cc, *msg.reply_to)
        keys = {email_key(a.email)[:320] for a in people} - {""} - policy.own.addresses
        return _Understood(msg, judge(msg, policy), tuple(sorted(keys)))
    except ParseError as exc:
        return exc
    except Exception as exc:  # a parser bug must cost one message, not the run
        # Intake logs the quarantine in one line; the parser's traceback only when debugging
        # (it cannot travel back from a worker process with the error).
        log.debug("%s: parser failed", raw.source, exc_info=True)
        return ParseError(f"parser failed: {type(exc).__name__}: {exc}", None)


def _size(raw: RawMessage) -> int:
    return raw.size if raw.size is not None else len(raw.data)


def prepare_batch(
    raws: list[RawMessage], blobs: BlobStore | None, max_bytes: int, policy: MailPolicy
) -> list[Prepared | Unreadable]:
    """Parse a batch and make its blobs durable together; ``blobs=None`` only hashes (dry run)."""
    understood = [_understand(raw, max_bytes, policy) for raw in raws]
    payloads: list[bytes] = []
    for raw, item in zip(raws, understood, strict=True):
        payloads.append(raw.data)
        if isinstance(item, _Understood):
            payloads.extend(a.payload for a in item.msg.attachments)
    stored = (
        blobs.put_many(payloads)
        if blobs is not None
        else Stored([sha256_hex(p) for p in payloads], [])
    )
    del payloads
    digests = stored.digests
    by_digest = {ref.sha256: ref for ref in stored.refs}
    batch: list[Prepared | Unreadable] = []
    position = 0
    for raw, item in zip(raws, understood, strict=True):
        count = len(item.msg.attachments) if isinstance(item, _Understood) else 0
        mine = digests[position : position + 1 + count]
        refs = tuple({d: by_digest[d] for d in mine if d in by_digest}.values())
        batch.append(_prepared(raw, item, mine, refs))
        position += 1 + count
    return batch


def _prepared(
    raw: RawMessage, item: _Understood | ParseError, digests: list[str], refs: tuple[BlobRef, ...]
) -> Prepared | Unreadable:
    """The one place a Prepared (or Unreadable) is made: blobs written, payloads dropped."""
    size = _size(raw)
    stripped = replace(raw, data=b"")
    if isinstance(item, ParseError):
        return Unreadable(stripped, size, digests[0], content_hash(raw.data), item, refs)
    msg = item.msg
    attachments = tuple(
        inbound.attachment_row(a, digest, len(a.payload))
        for a, digest in zip(msg.attachments, digests[1:], strict=True)
    )
    if msg.attachments:
        msg = replace(msg, attachments=tuple(replace(a, payload=b"") for a in msg.attachments))
    return Prepared(
        raw=stripped,
        size=size,
        raw_sha256=digests[0],
        msg=msg,
        verdict=item.verdict,
        row=inbound.message_row(raw, msg, size),
        attachments=attachments,
        participant_keys=item.participant_keys,
        facts=message_facts(msg) if item.verdict.may_lead else None,
        blobs=refs,
    )


# -- pickling across the process boundary ----------------------------------------------
#
# A prepared message crosses from a worker to the committing process as a dozen frozen,
# slotted dataclasses. Their default pickling calls ``dataclasses.fields()`` and then
# ``object.__setattr__`` once per field for every object loaded: about 60 % of unpickling a
# batch, paid by the committing process, which is the bottleneck of a bulk ingest. These
# reducers send the field values as one tuple and set the slots through their descriptors.


def _rebuilt(cls: type, state: tuple[Any, ...]) -> Any:
    obj: Any = object.__new__(cls)
    for assign, value in zip(_SLOT_SETTERS[cls], state, strict=True):
        assign(obj, value)
    return obj


_SLOT_SETTERS: dict[type, tuple[Any, ...]] = {}


def _pickle_by_slots(cls: type) -> None:
    names = tuple(f.name for f in dataclasses.fields(cls))
    _SLOT_SETTERS[cls] = tuple(cls.__dict__[name].__set__ for name in names)
    values = operator.attrgetter(*names)
    if len(names) == 1:
        copyreg.pickle(cls, lambda obj: (_rebuilt, (cls, (values(obj),))))
    else:
        copyreg.pickle(cls, lambda obj: (_rebuilt, (cls, values(obj))))


# Every dataclass a Prepared or an Unreadable holds (a test walks real ones to check).
PICKLED_BY_SLOTS = (
    Prepared,
    Unreadable,
    RawMessage,
    InboundMessage,
    Address,
    Attachment,
    ReportPart,
    Verdict,
    Sender,
    Classification,
    MessageFacts,
    inbound.AttachmentRow,
)
for _cls in PICKLED_BY_SLOTS:
    _pickle_by_slots(_cls)


class Source(Protocol):
    """Where a worker process reads the messages a batch names by key (an IMAP folder: by
    UID), so that the bytes go straight to the process that parses them. Made by the caller,
    inherited by each worker, opened there on first use and closed when the worker exits."""

    def load(self, keys: list[int], batch_bytes: int) -> Iterator[list[RawMessage]]:
        """The messages of ``keys`` in their order (a vanished one skipped), in batches of at
        most ``batch_bytes`` (or one larger message)."""
        ...

    def close(self) -> None: ...


# -- worker processes -------------------------------------------------------------------

_worker_blobs: BlobStore | None = None
_worker_source: Source | None = None
_PR_SET_PDEATHSIG = 1


def _init_worker(
    blobs: tuple[str, str | None, int] | None, parent: int, source: Source | None = None
) -> None:
    """``blobs``: the store's ``spec()``, or None (a dry run). The worker appends to a pack
    of its own and asks the database which digests it knows (each blob is stored once)."""
    global _worker_blobs, _worker_source
    _die_with_parent(parent)
    _worker_blobs = BlobStore.from_spec(blobs) if blobs is not None else None
    _worker_source = source
    if source is not None:
        # Run when the pool lets the worker go (multiprocessing's exit hook): a polite
        # LOGOUT instead of a dropped connection.
        Finalize(source, source.close, exitpriority=10)


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive a killed ingest: it would hold files and CPU for nothing.

    A pool worker blocked on its queue does not notice a SIGKILLed parent, so ask Linux to
    kill it when the parent dies (prctl PR_SET_PDEATHSIG), and exit if that already happened.
    """
    lib = libc()
    if lib is not None:
        with contextlib.suppress(AttributeError):
            lib.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _worker_batch(
    raws: list[RawMessage], max_bytes: int, policy: MailPolicy
) -> list[Prepared | Unreadable]:
    return prepare_batch(raws, _worker_blobs, max_bytes, policy)


def _worker_load(
    keys: list[int], max_bytes: int, policy: MailPolicy
) -> list[Prepared | Unreadable]:
    """Read the batch ``keys`` name from the worker's source and prepare it, a bounded
    number of bytes at a time (each part's blobs made durable together)."""
    assert _worker_source is not None
    prepared: list[Prepared | Unreadable] = []
    for raws in _worker_source.load(keys, BATCH_BYTES):
        prepared += prepare_batch(raws, _worker_blobs, max_bytes, policy)
    return prepared


class Preparer:
    """Yields prepared batches in input order, in this process or in ``workers`` processes."""

    def __init__(
        self, blobs: BlobStore | None, max_bytes: int, batch: int, workers: int, policy: MailPolicy
    ) -> None:
        self.policy = policy
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.batch = batch
        self.workers = workers

    def batches(self, raws: Iterable[RawMessage]) -> Iterator[list[Prepared | Unreadable]]:
        chunks = _chunks(iter(raws), self.batch)
        if self.workers <= 0:
            for chunk in chunks:
                yield prepare_batch(chunk, self.blobs, self.max_bytes, self.policy)
            return
        yield from self._pooled(chunks)

    def loaded(
        self, source: Source, keys: Iterable[list[int]]
    ) -> Iterator[list[Prepared | Unreadable]]:
        """Prepared batches, in order, of the messages ``keys`` name in ``source``: each
        worker process reads its batch itself (needs ``workers`` > 0)."""
        if self.workers <= 0:
            raise ValueError("reading from a source needs worker processes")
        context = multiprocessing.get_context("fork")
        spec = self.blobs.spec() if self.blobs is not None else None
        with ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(spec, os.getpid(), source),
        ) as pool:
            # Only keys travel to a worker and only prepared messages (without their bytes)
            # come back, so the window is bounded by batches: each worker holds one batch's
            # bytes, BATCH_BYTES at a time.
            window: deque[Future[list[Prepared | Unreadable]]] = deque()
            for batch in keys:
                window.append(pool.submit(_worker_load, batch, self.max_bytes, self.policy))
                if len(window) > self.workers * AHEAD:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()

    def _pooled(self, chunks: Iterator[list[RawMessage]]) -> Iterator[list[Prepared | Unreadable]]:
        # fork: workers start in milliseconds and inherit the imported parser; they touch no
        # database connection of ours.
        context = multiprocessing.get_context("fork")
        spec = self.blobs.spec() if self.blobs is not None else None
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(spec, os.getpid())
        ) as pool:
            # A bounded window of batches in flight keeps memory flat whatever the input size:
            # at most workers × AHEAD batches, and at most ``budget`` raw bytes once every
            # worker has one, so a run of large messages holds one per worker (each is held
            # here until its batch returns, and again by the worker parsing it) instead of
            # workers × AHEAD of them.
            budget = (self.workers * AHEAD + 1) * BATCH_BYTES
            window: deque[tuple[int, Future[list[Prepared | Unreadable]]]] = deque()
            in_flight = 0
            for chunk in chunks:
                size = sum(len(raw.data) for raw in chunk)
                while len(window) >= self.workers and in_flight + size > budget:
                    done, future = window.popleft()
                    in_flight -= done
                    yield future.result()
                window.append(
                    (size, pool.submit(_worker_batch, chunk, self.max_bytes, self.policy))
                )
                in_flight += size
                if len(window) > self.workers * AHEAD:
                    done, future = window.popleft()
                    in_flight -= done
                    yield future.result()
            while window:
                yield window.popleft()[1].result()


AHEAD = 2

# A batch also ends at this many raw bytes: a few large messages then make several batches,
# so the worker parses the next while this process commits the last.
BATCH_BYTES = 512 * 1024
# The first batches are small and double up to the full size: the committing process
# starts on the first few messages instead of idling until a whole batch is parsed, which
# on a short run (a small folder, a new poll) is most of the time.
FIRST_BATCH = 4
FIRST_BATCH_BYTES = 64 * 1024


def _chunks(iterator: Iterator[RawMessage], size: int) -> Iterator[list[RawMessage]]:
    limit, byte_limit = min(FIRST_BATCH, size), min(FIRST_BATCH_BYTES, BATCH_BYTES)
    chunk: list[RawMessage] = []
    volume = 0
    for raw in iterator:
        chunk.append(raw)
        volume += len(raw.data)
        if len(chunk) >= limit or volume >= byte_limit:
            yield chunk
            chunk, volume = [], 0
            limit, byte_limit = min(limit * 2, size), min(byte_limit * 2, BATCH_BYTES)
    if chunk:
        yield chunk


def default_workers() -> int:
    """Worker processes for bulk intake: one per core, at most 4.

    Parsing and blob writes cost more per message than the commit does, so with one worker
    the committing process waits; measured on 2 cores, 2 workers beat 1 by about 20 %
    (bench/README.md) although they share a core with the committer.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))
