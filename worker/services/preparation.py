"""The part of intake that needs no transaction: parse and write blobs, optionally in workers.

Parsing is the one CPU-heavy step and blob writes wait on the disk; running both in worker
processes while the main process commits the previous batch keeps both cores busy.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from worker.errors import LeadmailError, ParseError
from worker.mail.addresses import (
    LeadSender,
    SenderPolicy,
    email_key,
    guess_organization,
    lead_sender,
    organization_domain,
)
from worker.mail.classify import Classification, Kind, OwnIdentity, classify
from worker.mail.message import InboundMessage, RawMessage
from worker.mail.parse import normalize, parse
from worker.mail.threading import normalize_subject
from worker.store.blobs import BlobStore, libc, sha256_hex

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A message after parsing and blob writes, ready for its transaction.

    ``raw.data`` and attachment payloads are dropped once their blobs are written, so that
    handing a batch back from a worker process costs little.
    """

    raw: RawMessage
    size: int
    content_hash: str
    raw_sha256: str = ""
    msg: InboundMessage | None = None
    error: LeadmailError | None = None
    attachment_hashes: list[str] = field(default_factory=list)
    attachment_sizes: list[int] = field(default_factory=list)
    verdict: Classification | None = None
    sender: LeadSender | None = None
    sender_key: str = ""
    org: str | None = None  # the sender's organisation domain (None for free mail)
    company: str | None = None  # a company name guessed from the sender's domain
    # Everything of the message row that needs no database, computed here so the committing
    # process (the bottleneck of a bulk ingest) only adds ids and the outcome.
    row: dict[str, Any] = field(default_factory=dict)
    participant_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MailPolicy:
    """What understanding a message needs besides its bytes: who we are, who relays."""

    own: OwnIdentity
    senders: SenderPolicy


def content_hash(data: bytes) -> str:
    try:
        return sha256_hex(normalize(data))
    except ParseError:
        return sha256_hex(data)  # not mail at all: it will be quarantined under its bytes


def _understand(item: Prepared, policy: MailPolicy) -> None:
    """The pure decisions about a message that need no database: kind and real sender."""
    assert item.msg is not None
    msg = item.msg
    item.verdict = classify(msg, policy.own)
    item.sender = lead_sender(msg, policy.senders)
    if item.sender.address is not None:
        item.sender_key = email_key(item.sender.address.email)
        item.org = organization_domain(item.sender_key, policy.senders) or None
        item.company = guess_organization(item.sender_key, policy.senders)
        if (
            item.verdict.kind is Kind.OWN
            and item.sender.reason != "From"
            and item.sender_key not in policy.own.addresses
        ):
            # A form on our own site sends from our domain on behalf of a stranger.
            reasons = (*item.verdict.reasons, "relay for an outside sender")
            item.verdict = Classification(Kind.HUMAN, reasons)
    people = (*msg.from_, *msg.to, *msg.cc, *msg.reply_to)
    keys = {email_key(a.email)[:320] for a in people} - {""} - policy.own.addresses
    item.participant_keys = tuple(sorted(keys))
    item.row = _message_row(item)


def _message_row(item: Prepared) -> dict[str, Any]:
    msg = item.msg
    assert msg is not None
    sender = msg.from_address
    return {
        "direction": "in",
        "account": item.raw.account,
        "folder": item.raw.folder,
        "uid": item.raw.uid,
        "source": item.raw.source,
        "message_id": msg.message_id[:998],
        "in_reply_to": list(msg.in_reply_to)[:20],
        "references": list(msg.references)[-100:],
        "sender": sender.email[:320] if sender else None,
        "sender_name": (sender.name[:255] or None) if sender else None,
        "recipients": {
            "to": [str(a) for a in msg.to],
            "cc": [str(a) for a in msg.cc],
            "reply_to": [str(a) for a in msg.reply_to],
        },
        "subject": msg.subject,
        "subject_key": normalize_subject(msg.subject)[:255] or None,
        "sent_at": msg.date,
        "body_text": msg.text,
        "body_html": msg.html or None,
        "content_hash": item.content_hash,
        "size": item.size,
        "defects": list(msg.defects)[:50],
        "bounced": False,
    }


def _parse_one(raw: RawMessage, max_bytes: int, policy: MailPolicy) -> Prepared:
    size = raw.size if raw.size is not None else len(raw.data)
    item = Prepared(raw, size=size, content_hash="")
    if size > max_bytes or raw.size is not None:
        kept = "; its headers are kept" if raw.size is not None else ""
        item.error = ParseError(
            f"message of {size} bytes exceeds max_message_bytes ({max_bytes}){kept}", size
        )
    else:
        try:
            item.msg = parse(raw.data)
            item.content_hash = item.msg.content_hash  # parse hashed the same normalised bytes
            _understand(item, policy)
        except ParseError as exc:
            item.error = exc
        except Exception as exc:  # a parser bug must cost one message, not the run
            log.exception("parser failed on %s", raw.source)
            item.msg = None
            item.error = ParseError(f"parser failed: {type(exc).__name__}: {exc}", None)
    if item.msg is None:
        item.content_hash = content_hash(raw.data)
    return item


def prepare_batch(
    raws: list[RawMessage], blobs: BlobStore | None, max_bytes: int, policy: MailPolicy
) -> list[Prepared]:
    """Parse a batch and make its blobs durable together; ``blobs=None`` only hashes (dry run)."""
    batch = [_parse_one(raw, max_bytes, policy) for raw in raws]
    payloads: list[bytes] = []
    for item in batch:
        payloads.append(item.raw.data)
        if item.msg is not None:
            payloads.extend(a.payload for a in item.msg.attachments)
    digests = blobs.put_many(payloads) if blobs is not None else [sha256_hex(p) for p in payloads]
    position = 0
    for item in batch:
        item.raw_sha256 = digests[position]
        count = len(item.msg.attachments) if item.msg is not None else 0
        item.attachment_hashes = digests[position + 1 : position + 1 + count]
        position += 1 + count
        _drop_payloads(item)
    return batch


def _drop_payloads(item: Prepared) -> None:
    item.raw = replace(item.raw, data=b"")
    if item.msg is not None and item.msg.attachments:
        item.attachment_sizes = [len(a.payload) for a in item.msg.attachments]
        stripped = tuple(replace(a, payload=b"") for a in item.msg.attachments)
        item.msg = replace(item.msg, attachments=stripped)


# -- worker processes -------------------------------------------------------------------

_worker_blobs: BlobStore | None = None
_PR_SET_PDEATHSIG = 1


def _init_worker(blob_root: str | None, parent: int) -> None:
    global _worker_blobs
    _die_with_parent(parent)
    _worker_blobs = BlobStore(Path(blob_root)) if blob_root is not None else None


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


def _worker_batch(raws: list[RawMessage], max_bytes: int, policy: MailPolicy) -> list[Prepared]:
    return prepare_batch(raws, _worker_blobs, max_bytes, policy)


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

    def batches(self, raws: Iterable[RawMessage]) -> Iterator[list[Prepared]]:
        chunks = _chunks(iter(raws), self.batch)
        if self.workers <= 0:
            for chunk in chunks:
                yield prepare_batch(chunk, self.blobs, self.max_bytes, self.policy)
            return
        yield from self._pooled(chunks)

    def _pooled(self, chunks: Iterator[list[RawMessage]]) -> Iterator[list[Prepared]]:
        # fork: workers start in milliseconds and inherit the imported parser; they touch no
        # database connection of ours.
        context = multiprocessing.get_context("fork")
        root = str(self.blobs.root) if self.blobs is not None else None
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(root, os.getpid())
        ) as pool:
            # A bounded window of batches in flight keeps memory flat whatever the input size.
            window: deque[Future[list[Prepared]]] = deque()
            for chunk in chunks:
                window.append(pool.submit(_worker_batch, chunk, self.max_bytes, self.policy))
                if len(window) > self.workers * AHEAD:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()


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
