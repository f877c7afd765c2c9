"""Raw message bytes to an InboundMessage: the stdlib's MIME tree, bounded, our decoding on top."""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import dataclasses
import email
import email.utils
import functools
import hashlib
import html
import io
import itertools
import logging
import mimetypes
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors
from email.feedparser import BytesFeedParser
from email.generator import BytesGenerator
from email.message import Message
from email.policy import Compat32, compat32
from typing import Any

import nh3
from mailparser.const import ADDRESSES_HEADERS
from mailparser.dates import date_diagnostics, parse_mail_date
from mailparser.utils import get_addresses, receiveds_parsing

from worker.errors import ParseError
from worker.mail import charsets
from worker.mail.message import Address, Attachment, InboundMessage, ReportPart

MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_FIELDS = 1000  # decoded into InboundMessage.headers; the rest is dropped with a defect
MAX_HEADER_VALUE = 16 * 1024  # characters kept per decoded header value
MAX_ID_LENGTH = 512  # a longer Message-ID is treated as absent: it would not fit a DB index
MAX_JUNK_LINES = 32  # lines skipped looking for the first header before giving up
MAX_DEPTH = 64  # MIME nesting walked; deeper parts are reported, not followed
# Address headers: characters parsed from the start of one field, plus its last characters (a
# From whose 100 KB display name ends in "<ann@example.com>" still yields ann@example.com);
# mailboxes kept per field; comment parentheses and group colons left to the stdlib parser,
# which recurses once per nested comment or group (see _bounded_addresses).
MAX_ADDRESS_HEAD = 16 * 1024
MAX_ADDRESS_TAIL = 1024
MAX_ADDRESSES = 200
MAX_ADDRESS_NESTING = 32
# Text and HTML kept for the database, each: bytes of the decoded parts read (a 30 MB text body
# costs 1 MB, not 30 MB several times over in decoding, sanitising and rendering).
MAX_BODY_BYTES = 1024 * 1024
MAX_LOG_DEFECTS = 20  # mail-parser log records kept as defects per message
FEED_CHUNK = 64 * 1024  # bytes handed to the stdlib parser at a time (see _load)

SYNTHETIC_ID_DOMAIN = "leadmail.invalid"

# Machine-readable parts classify reads, by content type → the type reported in ReportPart.
# The RFC 6533 "global" (UTF-8) variants and the common misspelling message/rfc822-headers are
# reported under their classic names, so classify has one name per kind of report to check.
REPORT_TYPES: dict[str, str] = {
    "message/delivery-status": "message/delivery-status",
    "message/global-delivery-status": "message/delivery-status",
    "message/feedback-report": "message/feedback-report",
    "message/disposition-notification": "message/disposition-notification",
    "message/global-disposition-notification": "message/disposition-notification",
    "text/rfc822-headers": "text/rfc822-headers",
    "message/rfc822-headers": "text/rfc822-headers",
    "message/global-headers": "text/rfc822-headers",
}
_ENCLOSED_MESSAGES = ("message/rfc822", "message/global")
_ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc")
_ID_HEADERS = ("message-id", "in-reply-to", "references")
_PARAM_HEADERS = ("content-type", "content-disposition")

_BOM = b"\xef\xbb\xbf"
# RFC 5322 field name (printable ASCII but colon), tolerating blanks before the colon.
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_HEADER_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*\n?")
_FOLD = re.compile(r"[ \t]*\r?\n[ \t]*")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_BRACKETED_ID = re.compile(r"<([^<>]*)>")
_WHITESPACE = re.compile(r"\s+")

_HTML_DROP = re.compile(r"<(script|style|head|title)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HTML_BREAK = re.compile(
    r"<\s*/?\s*(?:br|p|div|tr|li|h[1-6]|hr|table|ul|ol|blockquote)\b[^>]*>", re.I
)
_HTML_CELL = re.compile(r"<\s*/\s*t[dh]\s*>", re.I)
_HTML_TAG = re.compile(r"<[^>]*>")
_INLINE_SPACE = re.compile(r"[ \t\xa0\u200b\f\v]+")
_LINE_EDGES = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")

# The stdlib's built-in table only, so part names do not depend on the host's /etc/mime.types.
_MIME_TYPES = mimetypes.MimeTypes()
_EXTENSIONS = {"text/calendar": ".ics", "application/ms-tnef": ".dat", "message/rfc822": ".eml"}
_HTML_URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"cid"}  # keep inline images referring to parts


@dataclass
class _Body:
    """What the MIME walk collects, before it is frozen into the InboundMessage."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    reports: list[ReportPart] = field(default_factory=list)
    charsets: list[str] = field(default_factory=list)
    categories: set[str] = field(default_factory=set)
    defects: list[str] = field(default_factory=list)


@dataclass
class _Headers:
    """Decoded headers plus the undecoded-but-readable values that need structure parsing."""

    decoded: dict[str, tuple[str, ...]]
    raw: dict[str, list[str]]
    defects: list[str]


def parse(raw: bytes, *, max_header_bytes: int = MAX_HEADER_BYTES) -> InboundMessage:
    """Understand one message. Total over real mail: only non-mail raises ParseError.

    The stdlib parser builds the ``Message`` tree from a bounded view of the bytes (see
    _load); mail-parser's header analyses supply the forgiving Date parser and header defect
    categories. Bodies, names and headers are decoded here from the part bytes, because
    mail-parser's own text drops 8-bit header bytes, leaves ISO-2022-JP undecoded and names
    unnamed parts randomly (so two parses of one message would differ). Memory stays within a
    few times the message's size, text and HTML within MAX_BODY_BYTES each, and what
    mail-parser logs becomes defects of the message (see _MailParserLog).
    """
    sink: list[str] = []
    token = _log_sink.set(sink)
    try:
        message = _parse(raw, max_header_bytes)
    finally:
        _log_sink.reset(token)
    if not sink:
        return message
    return dataclasses.replace(message, defects=message.defects + tuple(sink))


def _parse(raw: bytes, max_header_bytes: int) -> InboundMessage:
    start, junk_lines = _message_start(raw)
    normalized = _normalize_from(raw, start)
    content_hash = hashlib.sha256(normalized).hexdigest()
    head, body_start, cap_defects = _capped_header_block(normalized, max_header_bytes)
    message, categories, date = _load(head, normalized, body_start, content_hash[:16])

    body = _walk(message)
    hint = body.charsets[0] if body.charsets else None
    headers = _read_headers(message, hint)
    message_id, id_defects = _message_id(headers.raw.get("message-id", []))
    date, date_defects = _checked_date(date, headers.decoded.get("date", ()))

    defects = [f"JunkBeforeHeaders: {junk_lines} line(s) skipped"] if junk_lines else []
    defects += cap_defects + headers.defects + id_defects + date_defects + body.defects
    text = _joined(body.plain)
    html_source = _joined(body.html)
    content_type = message.get_content_type()
    addresses = {
        key: _addresses(key, headers.raw.get(key, []), defects) for key in _ADDRESS_HEADERS
    }
    return InboundMessage(
        message_id=message_id or _synthetic_id(content_hash),
        content_hash=content_hash,
        size=len(raw),
        subject=headers.decoded.get("subject", ("",))[0],
        from_=addresses["from"],
        sender=next(iter(addresses["sender"]), None),
        reply_to=addresses["reply-to"],
        to=addresses["to"],
        cc=addresses["cc"],
        in_reply_to=message_ids(" ".join(headers.raw.get("in-reply-to", []))),
        references=message_ids(" ".join(headers.raw.get("references", []))),
        date=date,
        # isspace() instead of strip(): no copy of a large text just to test it.
        text=text if text and not text.isspace() else html_to_text(html_source),
        html=nh3.clean(html_source, url_schemes=_HTML_URL_SCHEMES) if html_source else "",
        attachments=tuple(body.attachments),
        content_type=content_type,
        report_type=_report_type(message) if content_type == "multipart/report" else "",
        report_parts=tuple(body.reports),
        charsets=tuple(body.charsets),
        headers=headers.decoded,
        defects=tuple(sorted(categories | body.categories)) + tuple(defects),
        message_id_synthesized=not message_id,
    )


# --- mail-parser's log ---------------------------------------------------------------------
#
# mail-parser logs what it finds odd itself, quoting raw header bytes (escape sequences
# included) at WARNING and ERROR, and formats DEBUG lines with whole header lists. Those are
# facts about one message: they belong in its defects, not on a terminal or in our log. Its
# logger therefore never propagates, and records go to the list of the parse() running in the
# same thread or task (a context variable, so concurrent parses do not mix their records).

_log_sink: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "leadmail_mailparser_log", default=None
)
_LOG_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]+")
log = logging.getLogger(__name__)


class _MailParserLog(logging.Handler):
    """Files mail-parser's records under the message being parsed, sanitised and truncated."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not format is still a defect
            text = str(record.msg)
        if record.exc_info and record.exc_info[0] is not None:
            text = f"{text} ({record.exc_info[0].__name__})"
        text = _LOG_UNSAFE.sub("?", text)[:200]
        sink = _log_sink.get()
        if sink is None:
            log.debug("mail-parser outside parse(): %s", text)
        elif len(sink) < MAX_LOG_DEFECTS:
            defect = f"MailParserLog({record.levelname}): {text}"
            if defect not in sink:  # it reads some headers twice
                sink.append(defect)


_MAILPARSER_LOGGER = logging.getLogger("mailparser")
_MAILPARSER_LOGGER.addHandler(_MailParserLog())
_MAILPARSER_LOGGER.setLevel(logging.WARNING)  # its DEBUG lines are not defects
_MAILPARSER_LOGGER.propagate = False


# --- bytes before parsing -------------------------------------------------------------------


def normalize(raw: bytes) -> bytes:
    """The bytes a message is identified by: no BOM or junk before the headers, LF endings.

    A message fetched over IMAP (CRLF) and the same message read from an mbox (LF, "From "
    line) must hash alike, or dedup would store it twice.
    """
    start, _ = _message_start(raw)
    return _normalize_from(raw, start)


def _normalize_from(raw: bytes, start: int) -> bytes:
    return raw[start:].replace(b"\r\n", b"\n")


def _message_start(raw: bytes) -> tuple[int, int]:
    """Offset of the first header line and how many junk lines precede it.

    Skips a UTF-8 BOM, blank lines, an mbox "From " line and other non-header lines, and the
    indentation of a first header written with leading blanks. Raises ParseError when there
    is no header near the start: such bytes are not mail and must go to quarantine.
    """
    pos = len(_BOM) if raw.startswith(_BOM) else 0
    for junk in range(MAX_JUNK_LINES + 1):
        end = raw.find(b"\n", pos)
        line_end = len(raw) if end < 0 else end
        indent = len(raw[pos:line_end]) - len(raw[pos:line_end].lstrip(b" \t"))
        if _HEADER_LINE.match(raw, pos + indent, line_end):
            return pos + indent, junk
        if end < 0:
            break
        pos = end + 1
    raise ParseError("not a mail message: no header line at the start", raw[:80])


def _capped_header_block(data: bytes, limit: int) -> tuple[bytes, int, list[str]]:
    """The header block without the fields that would take it past ``limit`` bytes.

    Returns the kept header bytes and the offset in ``data`` where the rest (the body) starts;
    (b"", 0) when nothing was dropped, so the caller feeds ``data`` as it is and no copy of a
    large message is made. Fields are skipped, not cut, so a giant Subject early in the block
    does not take the Content-Type after it down with it; the body is kept untouched.
    """
    end = data.find(b"\n\n")
    if (end + 1 if end >= 0 else len(data)) <= limit:
        return b"", 0, []
    kept: list[bytes] = []
    skipped: list[str] = []
    total = pos = 0
    while (match := _HEADER_FIELD.match(data, pos)) is not None and match.end() > pos:
        size = match.end() - pos
        if total + size <= limit:
            kept.append(match.group())
            total += size
        else:
            skipped.append(match.group().split(b":", 1)[0].strip().decode("ascii").lower())
        pos = match.end()
    if not skipped:
        return b"", 0, []
    names = ", ".join(sorted(set(skipped)))
    defect = f"HeaderBlockTooLarge: {len(skipped)} field(s) over {limit} bytes skipped: {names}"
    return b"".join(kept), pos, [defect[:300]]


# --- what the stdlib parser reads -----------------------------------------------------------
#
# The stdlib parser holds every line of the part it is reading as a str of its own (about 60
# bytes each, plus two bytes a character once a line has an 8-bit byte) and a header line as a
# tuple of two: a 10 MB body of two-byte lines took 37 times its size, a 10 MB
# message/delivery-status of empty header blocks 96 times and half a minute. So it never reads
# a long body: of each stretch between lines starting with "--" (the only lines that can end
# a part) it reads the first SEGMENT_HEAD bytes, which hold the part's headers and the headers
# of an enclosed message, within MAX_PARSED_LINES lines (then PART_HEAD bytes, PART_LINES
# lines a stretch) and MAX_SEGMENTS stretches in all (the rest is one token). The
# rest of a stretch reaches it as one token line, which _decoded and _flatten replace by the
# bytes it stands for when they read the part; only the first MAX_BODY_BYTES of a text part
# are ever copied.

SEGMENT_HEAD = 64 * 1024
MAX_PARSED_LINES = 100_000
MAX_SEGMENTS = 1000
PART_HEAD = 4096  # what a stretch keeps once MAX_PARSED_LINES are spent: its part headers
PART_LINES = 64
_DASH_LINE = re.compile(rb"[\r\n]--")  # a line break, then the line that may be a boundary
_TOKEN_START = "\x00LM"  # noqa: S105 (not a password)


@dataclass(frozen=True, slots=True)
class _Elided:
    """Stretches of the message the parser did not read, each standing in as one token."""

    data: bytes
    spans: tuple[tuple[int, int], ...]
    nonce: str  # from the content hash: a sender cannot write a token of its own message

    def token(self, index: int) -> bytes:
        return f"{_TOKEN_START}{self.nonce}:{index}\x00".encode("ascii")

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(_TOKEN_START + self.nonce) + r":(\d+)\x00")

    def expand(self, text: str, cap: int | None) -> tuple[bytes, bool]:
        """The bytes of a payload as parsed, tokens replaced; at most ``cap``, and if more."""
        view = memoryview(self.data)
        pieces: list[bytes | memoryview] = []
        size = pos = 0
        for match in [*self.pattern.finditer(text), None]:
            literal = text[pos : match.start() if match else len(text)]
            found: list[bytes | memoryview] = [
                literal.encode("ascii") if literal.isascii() else _payload_bytes(literal)
            ]
            if match is not None:
                pos = match.end()
                index = int(match.group(1))
                if index < len(self.spans):
                    found.append(view[self.spans[index][0] : self.spans[index][1]])
            for piece in found:
                if cap is not None and size + len(piece) > cap:
                    pieces.append(piece[: cap - size])
                    return b"".join(pieces), True
                pieces.append(piece)
                size += len(piece)
        return b"".join(pieces), False

    def expand_bytes(self, data: bytes) -> bytes:
        """A serialised part (see _flatten) with its tokens replaced."""
        pattern = re.compile(re.escape(self.token(0)[:-3]) + rb":(\d+)\x00")
        view = memoryview(self.data)

        def stretch(match: re.Match[bytes]) -> bytes:
            index = int(match.group(1))
            if index >= len(self.spans):
                return b""
            start, end = self.spans[index]
            return bytes(view[start:end])

        return pattern.sub(stretch, data)


def _elide(data: bytes, start: int, nonce: str) -> _Elided | None:
    """The stretches of ``data`` after ``start`` the parser is not given (see above)."""
    if len(data) - start <= SEGMENT_HEAD:
        return None
    spans: list[tuple[int, int]] = []
    lines_left = MAX_PARSED_LINES
    segment = start
    ends = (m.start() + 1 for m in _DASH_LINE.finditer(data, start))
    for count, end in enumerate(itertools.chain(ends, (len(data),))):
        if count >= MAX_SEGMENTS:
            break
        # Once the budget is spent, a stretch still keeps its boundary and part headers.
        budget = (SEGMENT_HEAD, lines_left) if lines_left > 0 else (PART_HEAD, PART_LINES)
        keep, lines = _kept(data, segment, end, *budget)
        lines_left -= lines
        _add_span(spans, data, keep, end)
        segment = end
    else:
        segment = len(data)
    _add_span(spans, data, segment, len(data))
    return _Elided(data, tuple(spans), nonce) if spans else None


def _kept(data: bytes, start: int, end: int, size: int, lines_left: int) -> tuple[int, int]:
    """Where the parser stops reading the stretch start:end, and how many lines it reads."""
    keep = end
    if end - start > size:
        limit = start + size
        keep = max(data.rfind(b"\n", start, limit), data.rfind(b"\r", start, limit)) + 1
        keep = max(keep, start)
    lines = data.count(b"\n", start, keep) + data.count(b"\r", start, keep)
    if lines <= lines_left:
        return keep, lines
    pos = start
    for _ in range(lines_left):
        breaks = [i for i in (data.find(b"\n", pos, keep), data.find(b"\r", pos, keep)) if i >= 0]
        pos = min(breaks) + 1
    return pos, lines_left


def _add_span(spans: list[tuple[int, int]], data: bytes, start: int, end: int) -> None:
    """Elide start:end but its last line break, which stays to end the token's line."""
    if end > start and data[end - 1] in b"\r\n":
        end -= 1
    if end > start:
        spans.append((start, end))


def _pieces(data: bytes, start: int, elided: _Elided | None) -> Iterator[bytes]:
    """What the parser is fed, in chunks: ``data[start:]`` with elided stretches as tokens."""
    view = memoryview(data)
    pos = start
    for index, (begin, end) in enumerate(elided.spans if elided else ()):
        for offset in range(pos, begin, FEED_CHUNK):
            yield view[offset : min(offset + FEED_CHUNK, begin)].tobytes()
        assert elided is not None
        yield elided.token(index)
        pos = end
    for offset in range(pos, len(data), FEED_CHUNK):
        yield view[offset : offset + FEED_CHUNK].tobytes()


class _ParsedPart(Message):
    """A Message whose payload can be read as the parser left it, for _decoded.

    get_payload() re-decodes an 8-bit payload with the part's charset (lossy, and a full copy
    to find that out); get_payload(decode=True) copies a base64 payload four times over. The
    parser builds every part from this class (its ``_factory``), so each part offers ``wire``
    and knows the stretches its payload may stand in for.
    """

    def __init__(self, policy: Compat32 = compat32, elided: _Elided | None = None) -> None:
        super().__init__(policy)
        self.elided = elided

    @property
    def wire(self) -> Any:
        # _payload is where the feedparser itself writes (it trims a part's last line break
        # before a boundary in place, after set_payload), so no public method sees the same.
        return getattr(self, "_payload", None)  # not in the stdlib's type stubs


def _load(
    head: bytes, data: bytes, start: int, nonce: str
) -> tuple[Message, set[str], datetime | None]:
    """The stdlib's MIME tree of ``head`` + ``data[start:]``, fed in chunks, long bodies elided.

    Not mailparser.parse_from_bytes: it decodes the whole message into one str first (two or
    four bytes a character once it holds a single 8-bit byte), then decodes every body and
    re-encodes every attachment as base64 text, which took 8 to 30 times a message's size.
    Fed in chunks, the parser holds the lines it reads (see above) and nothing else; mail-parser
    still analyses the header block (see _header_facts).
    """
    if head:
        body = start
    else:
        end = data.find(b"\n\n", 0, MAX_HEADER_BYTES)
        body = end + 1 if end >= 0 else min(len(data), MAX_HEADER_BYTES)
    elided = _elide(data, body, nonce)
    parser = BytesFeedParser(
        _factory=functools.partial(_ParsedPart, elided=elided), policy=compat32
    )
    try:
        if head:
            parser.feed(head)
        for piece in _pieces(data, start, elided):
            parser.feed(piece)
        message = parser.close()
    except RecursionError:
        # The stdlib recurses once per nested multipart or message/rfc822 and has no depth
        # limit of its own. Thousands of levels are no mail a person wrote, but the headers
        # still name a sender: keep them, read no body, and say so; the raw bytes are kept.
        message = _headers_only(head or data[:body], elided)
    categories, date = _header_facts(message)
    return message, categories, date


class MimeNestingDefect(errors.MessageDefect):
    """The MIME tree nests deeper than the stdlib parser can follow: no body part was read."""


def _headers_only(header_block: bytes, elided: _Elided | None) -> Message:
    """The message's header block alone, as a body-less message with a MimeNestingDefect."""
    parser = BytesFeedParser(
        _factory=functools.partial(_ParsedPart, elided=elided), policy=compat32
    )
    parser.feed(header_block.rstrip(b"\r\n") + b"\n\n")
    message = parser.close()
    del message["Content-Type"]  # read as text/plain: there is no body to split
    # A multipart header with no body left only boundary defects: they describe our cut.
    message.defects[:] = [d for d in message.defects if not isinstance(d, _BOUNDARY_DEFECTS)] + [
        MimeNestingDefect()
    ]
    return message


_BOUNDARY_DEFECTS = (
    errors.StartBoundaryNotFoundDefect,
    errors.CloseBoundaryNotFoundDefect,
    errors.MultipartInvariantViolationDefect,
    errors.NoBoundaryInMultipartDefect,
)


def _header_facts(message: Message) -> tuple[set[str], datetime | None]:
    """mail-parser's lenient Date and its header defect categories (address, date, Received).

    The same three analyses MailParser runs on construction, called directly: the rest of its
    work (decoding every header twice into dicts, every body) is not used here. It runs
    heuristics on sender-controlled input; a bug there must cost us its extras, not the
    message. Address fields reach it bounded as they reach our own address parser, and a
    plain one (see _plain_address_field), whose answer is known, not at all.
    """
    try:
        return _mailparser_facts(message)
    except Exception as exc:  # see docstring (RecursionError included): degrade, never lose it
        return {f"MailParserFailed({type(exc).__name__})"}, _stdlib_date(message)


def _mailparser_facts(message: Message) -> tuple[set[str], datetime | None]:
    categories: set[str] = set()
    addresses: list[tuple[str, str]] = []
    dates: list[tuple[str, str]] = []
    received: list[str] = []
    for name, raw in message.raw_items():
        key = name.lower()
        if key in ADDRESSES_HEADERS:
            addresses.append((name, raw))
        elif key == "received":
            received.append(raw)
        elif key in ("date", "resent-date"):
            dates.append((key, raw))
    for name, raw in addresses:
        if isinstance(raw, str) and _plain_address_field(raw):
            continue  # mail-parser accepts it without a diagnostic (see _plain_address_field)
        # What Message.items() hands out: a Header object for a value with 8-bit bytes.
        value = message.policy.header_fetch_parse(name, raw)
        bounded, notes = _bounded_address_text(readable(str(value)))
        diagnostics: list[dict[str, Any]] = []
        get_addresses(bounded if notes else value, defects=diagnostics, decode_names=True)
        if diagnostics:
            categories.add("AddressHeaderDefect")
    date: datetime | None = None
    date_defects: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for key, raw in dates:
        occurrence = seen[key] = seen.get(key, -1) + 1
        result = parse_mail_date(raw)
        if key == "date" and occurrence == 0:
            date = result.value
        date_defects.extend(date_diagnostics(result, raw, key, occurrence))
    received_defects: list[dict[str, Any]] = []
    if received:  # with none it finds nothing (and logs only at DEBUG): 4 us saved
        receiveds_parsing(received, defects=received_defects, date_defects=date_defects)
    if received_defects:
        categories.add("ReceivedHeaderDefect")
    if date_defects:
        categories.add("DateHeaderDefect")
    return categories, date


# --- plain address fields ----------------------------------------------------------------------
#
# Most address fields are a list of "local@domain" or "Name Words <local@domain>". For those the
# answers of mail-parser's character scanner and of the stdlib's parser are known without
# running either, so neither runs. A field is plain when it is ASCII without line breaks (folds
# aside) and each comma-separated item is blank, a dot-atom addr-spec, or a phrase of atoms,
# dots and blanks before one dot-atom addr-spec in angle brackets, with nothing after it: no
# comments, quotes, groups, backslashes, domain literals, routes or encoded-words. Then:
# - mail-parser's _scan finds no problem (none of its delimiters but "," "<" ">" occur, one
#   angle pair an item), _mailbox accepts each addr-spec (a dot-atom fullmatches its
#   _ADDR_SPEC and has no blank to remove), _valid_phrase accepts each phrase, no
#   encoded-word is decoded, and its stdlib cross-check (email.utils.getaddresses, strict or
#   not: no parenthesis, bracket or quoted comma) returns the same addresses: no diagnostic;
# - email.utils.getaddresses returns, for each non-blank item in order, ("", addr-spec) or
#   (the phrase's words joined by one space, addr-spec), and ("", "") for blank items.
# Anything else goes the general way. tests/unit/test_parse_shortcuts.py checks both claims
# against mail-parser and the stdlib over the corpus and generated fields.

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM_SPEC = rf"{_ATEXT}++(?:\.{_ATEXT}++)*+@{_ATEXT}++(?:\.{_ATEXT}++)*+"
_PLAIN_PHRASE = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~. \t-]*+"
_PLAIN_ITEM = rf"[ \t]*+(?:{_DOT_ATOM_SPEC}|{_PLAIN_PHRASE}<{_DOT_ATOM_SPEC}>)?+[ \t]*+"
# Possessive throughout: no item can be matched two ways, so matching is linear.
_PLAIN_ADDRESS_LIST = re.compile(rf"{_PLAIN_ITEM}(?:,{_PLAIN_ITEM})*+")
_ADDRESS_FOLD = re.compile(r"\r?\n[ \t]+")  # mail-parser's unfolding (addresses._FOLD)


def _plain_address_field(raw: str) -> bool:
    """Whether mail-parser's get_addresses accepts ``raw`` without a diagnostic, known cheaply.

    True only for a plain field (see above) that reaches it unbounded (_bounded_address_text
    keeps it whole); false means "not known", and the caller asks mail-parser.
    """
    if len(raw) > MAX_ADDRESS_HEAD + MAX_ADDRESS_TAIL or not raw.isascii() or "=?" in raw:
        return False
    if "\n" in raw:
        raw = _ADDRESS_FOLD.sub(" ", raw)
    return _PLAIN_ADDRESS_LIST.fullmatch(raw) is not None


def _plain_mailboxes(text: str) -> list[tuple[str, str]] | None:
    """email.utils.getaddresses([text]) without its blank entries, for a plain field; else None."""
    if not text.isascii() or _PLAIN_ADDRESS_LIST.fullmatch(text) is None:
        return None
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        item = item.strip(" \t")
        if not item:
            continue
        if item[-1] == ">":
            phrase, _, addr = item[:-1].rpartition("<")
            pairs.append((" ".join(phrase.split()), addr))
        else:
            pairs.append(("", item))
    return pairs


def _stdlib_date(message: Message) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(_first_raw(message, "date"))
    except (TypeError, ValueError, IndexError):
        return None


# --- headers ---------------------------------------------------------------------------------


def _read_headers(message: Message, hint: str | None) -> _Headers:
    """Decode every header once; keep the pre-RFC 2047 text of headers parsed for structure.

    Address and id headers are parsed before encoded-words are decoded, so a decoded name
    containing a comma or angle bracket cannot split or forge an address.
    """
    decoded: dict[str, list[str]] = {}
    raw: dict[str, list[str]] = {}
    defects: list[str] = []
    for count, (name, value) in enumerate(message.raw_items()):
        if count >= MAX_HEADER_FIELDS:
            defects.append(f"TooManyHeaders: only the first {MAX_HEADER_FIELDS} kept")
            break
        key = name.strip().lower()
        text = readable(str(value), hint)
        if key in _ADDRESS_HEADERS or key in _ID_HEADERS:
            raw.setdefault(key, []).append(text)
        value_text = decode_words(text, hint).strip()
        if len(value_text) > MAX_HEADER_VALUE:
            defects.append(f"HeaderValueTruncated: {key[:60]}")
            value_text = value_text[:MAX_HEADER_VALUE]
        decoded.setdefault(key, []).append(value_text)
    return _Headers({k: tuple(v) for k, v in decoded.items()}, raw, defects)


def readable(value: str, hint: str | None = None) -> str:
    """Unfold a raw header value and turn its 8-bit bytes into text.

    The stdlib keeps undeclared 8-bit header bytes as lone surrogates; RFC 6532 says they are
    UTF-8, older mailers used the body's charset, and windows-1252 is the last guess.
    """
    if "\n" in value:
        value = _FOLD.sub(" ", value)
    if value.isascii():
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return charsets.clean(value)
    return charsets.decode(data, None, fallbacks=("utf-8", hint, "cp1252"))


def decode_words(text: str, hint: str | None = None) -> str:
    """Decode RFC 2047 encoded-words, leniently.

    Adjacent words in one charset are joined as bytes before decoding, because mailers split
    multi-byte characters (Thai, Japanese) across words; blanks between encoded-words vanish
    as the RFC says; a word that does not decode stays as written.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            continue
        charset = match.group(1).split("*", 1)[0].lower()
        between = text[pos : match.start()]
        adjacent = pos > 0 and pending_charset is not None and not between.strip()
        if not (adjacent and charset == pending_charset):
            if pending_charset is not None:
                out.append(charsets.decode(bytes(pending), pending_charset, ("utf-8", hint)))
            if not adjacent:
                out.append(between)
            pending = bytearray()
        pending += data
        pending_charset = charset
        pos = match.end()
    if pending_charset is not None:
        out.append(charsets.decode(bytes(pending), pending_charset, ("utf-8", hint)))
    out.append(text[pos:])
    return charsets.clean("".join(out))


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    """The bytes of one encoded-word, or None when it is not decodable (left as literal)."""
    if encoding in "bB":
        try:
            return base64.b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            return None
    return binascii.a2b_qp(payload.encode("utf-8"), header=True)


def _addresses(key: str, values: Iterable[str], defects: list[str]) -> tuple[Address, ...]:
    """Mailboxes of an address header: RFC 2047 names decoded, domain lower-cased, deduplicated.

    Entries without an @ (group names, "undisclosed-recipients:;", bare words) are not mailboxes.
    Parsing is bounded (see _bounded_address_text) and at most MAX_ADDRESSES are kept, each
    shortening noted in ``defects``.
    """
    found: dict[str, Address] = {}
    for value in values:
        text, notes = _bounded_address_text(value)
        defects.extend(f"{note}: {key}" for note in notes)
        try:
            pairs = _plain_mailboxes(text) or email.utils.getaddresses([text])
        except RecursionError:  # cannot happen after bounding; if it does, the field is lost
            defects.append(f"AddressHeaderUnparsable: {key}")
            continue
        for name, addr in pairs:
            local, at, domain = addr.strip().rpartition("@")
            if not at or not local or not domain:
                continue
            if len(found) >= MAX_ADDRESSES:
                defects.append(f"AddressesTruncated: {key}: only the first {MAX_ADDRESSES} kept")
                return tuple(found.values())
            address = f"{local}@{domain.lower()}"
            display = _WHITESPACE.sub(" ", decode_words(name)).strip().strip("\"'").strip()
            if display.lower() == address.lower():
                display = ""
            found.setdefault(address.lower(), Address(display, address))
    return tuple(found.values())


def _bounded_address_text(value: str) -> tuple[str, list[str]]:
    """An address field cut to a size and a nesting the stdlib's address parser copes with.

    email.utils.getaddresses recurses once per nested comment and once per group, so 5,000
    "(" or "g:" reach Python's recursion limit; parsing also costs time in proportion to the
    text. A longer field keeps its first MAX_ADDRESS_HEAD characters (cut after a comma where
    possible) and its last MAX_ADDRESS_TAIL, so the mailbox ending a giant display name
    survives. Comments nested deeper than MAX_ADDRESS_NESTING keep only their outer
    parentheses, groups as deep only their outer colon (see _shallow): the mailboxes stay, the
    recursion goes. Line breaks go too, as the stdlib ends a comment at a CR.
    """
    notes: list[str] = []
    if len(value) > MAX_ADDRESS_HEAD + MAX_ADDRESS_TAIL:
        cut = value.rfind(",", MAX_ADDRESS_HEAD // 2, MAX_ADDRESS_HEAD)
        head = value[: cut if cut > 0 else MAX_ADDRESS_HEAD]
        tail = value[-MAX_ADDRESS_TAIL:]
        tail = tail[tail.find(" ") + 1 :]  # from a word's start, not inside an encoded-word
        value = f"{head}, {tail}"
        notes.append("AddressHeaderTruncated")
    if "\r" in value or "\n" in value:
        value = value.replace("\r", " ").replace("\n", " ")
    if value.count("(") > MAX_ADDRESS_NESTING:  # cheap test first: nesting needs that many
        value, deep = _shallow(value, "(", ")", " ", escapes=True)
        if deep:
            notes.append("AddressCommentsFlattened")
    if value.count(":") > MAX_ADDRESS_NESTING:
        value, deep = _shallow(value, ":", ";", ",", escapes=False)
        if deep:
            notes.append("AddressGroupsFlattened")
    return value, notes


def _shallow(
    value: str, opening: str, closing: str, inner: str, *, escapes: bool
) -> tuple[str, bool]:
    """``value`` with its ``opening``/``closing`` pairs below the first level made ``inner``.

    Only when they nest deeper than MAX_ADDRESS_NESTING (the flag says so); else unchanged.
    The depth counted here is never below the stdlib's: it also counts pairs inside quoted
    strings, and takes a backslash as an escape only inside a comment (``escapes``), as the
    stdlib does. A comment keeps its outer parentheses, so "a@x (Ann (Sales))" stays one
    mailbox with a comment; a group keeps its first colon.
    """
    out: list[str] = []
    depth = deepest = 0
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif escapes and char == "\\" and depth:
            escaped = True
        elif char == opening:
            depth += 1
            deepest = max(deepest, depth)
            char = inner if depth > 1 else char
        elif char == closing and depth:
            depth -= 1
            char = inner if depth >= 1 else char
        out.append(char)
    if deepest <= MAX_ADDRESS_NESTING:
        return value, False
    return "".join(out), True


def message_ids(text: str) -> tuple[str, ...]:
    """Bare ids from In-Reply-To / References, in order, without duplicates.

    Ids are taken between angle brackets, ignoring comments, phrases and other garbage mailers
    put between them; with no brackets at all, blank- or comma-separated tokens holding an @.
    """
    found = [_WHITESPACE.sub("", m) for m in _BRACKETED_ID.findall(text)]
    if not found:
        found = [t.strip("<>") for t in re.split(r"[\s,]+", text) if "@" in t]
    return tuple(dict.fromkeys(i for i in found if i and len(i) <= MAX_ID_LENGTH))


def _message_id(values: list[str]) -> tuple[str, list[str]]:
    """The bare Message-ID, or '' (with a defect saying why) when one must be synthesised."""
    text = values[0] if values else ""
    bracketed = _BRACKETED_ID.search(text)
    candidate = _WHITESPACE.sub("", bracketed.group(1)) if bracketed else "".join(text.split()[:1])
    if not candidate:
        return "", ["MissingMessageId"]
    if len(candidate) > MAX_ID_LENGTH:
        return "", [f"MessageIdTooLong: {len(candidate)} characters"]
    return candidate, []


def _synthetic_id(content_hash: str) -> str:
    """Stable across fetches of the same bytes, so a re-fetched message still deduplicates."""
    return f"{content_hash[:32]}@{SYNTHETIC_ID_DOMAIN}"


def _checked_date(
    parsed: datetime | None, values: tuple[str, ...]
) -> tuple[datetime | None, list[str]]:
    """The Date as aware UTC, or None with a defect naming the header that could not be read."""
    if parsed is not None:
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC), []
        return parsed.astimezone(UTC), []
    if not values:
        return None, ["MissingDate"]
    return None, [f"UnparsableDate: {values[0][:80]!r}"]


def _report_type(message: Message) -> str:
    value = message.get_param("report-type")
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    return str(value or "").strip().lower()


# --- MIME walk -------------------------------------------------------------------------------


def _walk(root: Message) -> _Body:
    """Collect bodies, attachments and report parts, in document order.

    A message/rfc822 part is an attachment and is not descended into: the text of a forwarded
    or returned message is not the text of this one. Part numbers (pre-order, root = 0) give
    unnamed parts stable names.
    """
    body = _Body()
    for part in _parts(root):
        if part.depth > MAX_DEPTH:
            body.defects.append(f"NestingTooDeep: part {part.index} and below skipped")
            continue
        try:
            _collect(part, body)
        except Exception as exc:  # one broken part must not lose the rest of the message
            body.defects.append(f"PartError: part {part.index}: {type(exc).__name__}: {exc}"[:300])
        finally:
            # An enclosed message is not walked for bodies, but its defects are this one's.
            inner = part.message.walk() if part.maintype == "message" else (part.message,)
            body.categories.update(type(d).__name__ for m in inner for d in m.defects)
    return body


@dataclass(frozen=True, slots=True)
class _Part:
    """A MIME part and where it sits; ``ctype`` is read once, as each get() scans every header."""

    message: Message
    index: int
    ctype: str
    in_report: bool
    depth: int

    @property
    def maintype(self) -> str:
        return self.ctype.partition("/")[0]


def _parts(root: Message) -> Iterator[_Part]:
    """Pre-order walk with an explicit stack (no recursion limit); stops below MAX_DEPTH."""
    stack: list[tuple[Message, bool, int]] = [(root, False, 0)]
    index = 0
    while stack:
        message, in_report, depth = stack.pop()
        part = _Part(message, index, message.get_content_type(), in_report, depth)
        index += 1
        yield part
        if depth > MAX_DEPTH or part.maintype != "multipart" or not message.is_multipart():
            continue
        inside = in_report or part.ctype == "multipart/report"
        stack.extend((child, inside, depth + 1) for child in reversed(_children(message)))


def _collect(part: _Part, body: _Body) -> None:
    """File one part under text, html, report or attachment."""
    if part.maintype == "multipart" and part.message.is_multipart():
        return
    mime = _MimeView.of(part.message)
    if part.ctype in REPORT_TYPES:
        text, more = _part_text(part.message, mime.charset, MAX_BODY_BYTES)
        if more:
            body.defects.append(f"BodyTruncated: part {part.index} cut at {MAX_BODY_BYTES} bytes")
        body.reports.append(ReportPart(REPORT_TYPES[part.ctype], text))
        return
    if part.maintype == "message":
        body.attachments.append(_message_attachment(part, mime))
        if part.in_report and part.ctype in _ENCLOSED_MESSAGES:
            body.reports.append(ReportPart("message/rfc822", _header_block(part.message)))
        return
    if (
        mime.charset
        and part.maintype in ("text", "multipart")
        and mime.charset not in body.charsets
    ):
        body.charsets.append(mime.charset)
    # A multipart without boundary is unreadable MIME: its raw text is the best body there is.
    is_text = part.ctype in ("text/plain", "text/html") or part.maintype == "multipart"
    if is_text and mime.disposition != "attachment":
        _collect_text(part, mime, body.html if part.ctype == "text/html" else body.plain, body)
        # Named inline text is both shown in the body and offered as a file (as mail-parser does).
        if not mime.filename or mime.disposition != "inline":
            return
    body.attachments.append(_leaf_attachment(part, mime))


def _collect_text(part: _Part, mime: _MimeView, kept: list[str], body: _Body) -> None:
    """Add a text part to ``kept``, within MAX_BODY_BYTES for all parts of its kind together."""
    room = MAX_BODY_BYTES - sum(len(text) for text in kept)
    if room <= 0:
        body.defects.append(
            f"BodyTruncated: part {part.index} over {MAX_BODY_BYTES} bytes, skipped"
        )
        return
    text, more = _part_text(part.message, mime.charset, room)
    if more:
        body.defects.append(f"BodyTruncated: part {part.index} cut at {room} bytes")
    kept.append(text)


@dataclass(frozen=True, slots=True)
class _MimeView:
    """The MIME parameters of a part, decoded: charset, disposition, file name, Content-ID."""

    charset: str | None
    disposition: str | None
    filename: str
    content_id: str | None

    @classmethod
    def of(cls, message: Message) -> _MimeView:
        """Read the parameters from a two-header stand-in holding readable text.

        For a header with raw 8-bit bytes the stdlib hands back a Header object whose str()
        has replacement characters (a UTF-8 "ciële.txt" came back as "ci��le.txt"); the
        stand-in also makes each lookup scan two headers instead of all of them.
        """
        params = Message()
        content_id = None
        content_type: str | None = None
        named = False
        for name, value in message.raw_items():
            key = name.lower()
            if key in _PARAM_HEADERS:
                text = params[name] = readable(str(value))
                # Every spelling of a "filename" or "name" parameter (RFC 2231 ones too)
                # holds this; without it get_filename() would parse the headers for nothing.
                named = named or "name" in text.lower()
                if key == "content-type" and content_type is None:
                    content_type = text  # the one get() and so get_content_charset() read
            elif key == "content-id" and content_id is None:
                content_id = readable(str(value)).strip().strip("<>").strip() or None
        raw_name = params.get_filename() if named else None
        filename = (
            _WHITESPACE.sub(" ", decode_words(readable(raw_name))).strip() if raw_name else ""
        )
        charset = _plain_charset(content_type) if content_type else None
        return cls(
            charset or params.get_content_charset(),
            params.get_content_disposition(),
            filename,
            content_id,
        )


# "text/plain; charset=utf-8" (the value optionally quoted) and nothing else: the charset
# Message.get_content_charset() returns for it is the value lower-cased, and reading it here
# skips the stdlib's general parameter parser (RFC 2231 decoding included), 14 us a part.
_PLAIN_CONTENT_TYPE = re.compile(  # possessive, like _PLAIN_ADDRESS_LIST: linear
    r"[ \t]*+[A-Za-z0-9!#$%&'+.^_`|~-]++/[A-Za-z0-9!#$%&'+.^_`|~-]++[ \t]*+;"
    r"[ \t]*+charset[ \t]*+=[ \t]*+(\"?+)([A-Za-z0-9_.:+-]++)\1[ \t]*+;?+[ \t]*+",
    re.ASCII | re.IGNORECASE,
)


def _plain_charset(content_type: str) -> str | None:
    """get_content_charset() of a Content-Type of just a type and a charset; else None."""
    if not content_type.isascii():
        return None
    match = _PLAIN_CONTENT_TYPE.fullmatch(content_type)
    return match.group(2).lower() if match else None


def _children(message: Message) -> list[Message]:
    """Sub-parts of a multipart or message/* part.

    Only ever called after is_multipart(): a bare get_payload() on a leaf decodes it with its
    charset parameter and raises on a bad one (TypeError for an RFC 2231 tuple, LookupError).
    """
    payload = message.get_payload() if message.is_multipart() else None
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _first_raw(message: Message, name: str) -> str:
    """A header's raw text; get() would replace 8-bit bytes with U+FFFD before we could decode."""
    return next((str(v) for k, v in message.raw_items() if k.lower() == name), "")


_UUENCODINGS = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]+")
_BASE64_JUNK = re.compile(r"[^A-Za-z0-9+/=\s]")


def _part_bytes(message: Message) -> bytes:
    return _decoded(message, None)[0]


def _decoded(message: Message, limit: int | None) -> tuple[bytes, bool]:
    """A leaf part's bytes with the transfer encoding undone: at most ``limit``, and if more.

    Done here, not by get_payload(decode=True), which makes four copies of a base64 payload
    (surrogate check, encode, splitlines, join) before decoding it; binascii reads the ASCII
    payload string as it is, skipping line breaks itself. With a limit, only the start of the
    payload is decoded.
    """
    payload = message.wire if isinstance(message, _ParsedPart) else None
    if not isinstance(payload, str):
        if payload is not None or message.is_multipart():
            return b"", False
        whole = message.get_payload(decode=True)  # a part we did not parse: the stdlib way
        payload_bytes = whole if isinstance(whole, bytes) else b""
        return (payload_bytes, False) if limit is None else _limited(payload_bytes, limit)
    encoding = _first_raw(message, "content-transfer-encoding").strip().lower()
    # Upper bounds of the encoded size of ``limit`` decoded bytes.
    factor = {"base64": 2, "quoted-printable": 3}.get(encoding, 1)
    if encoding in _UUENCODINGS:
        factor = 2
    encoded, more = _wire_bytes(message, payload, None if limit is None else limit * factor)
    if encoding in _UUENCODINGS:
        data = _uudecode(encoded.encode("ascii") if isinstance(encoded, str) else encoded)
    elif encoding == "base64":
        data = _base64(encoded, message)
    elif encoding == "quoted-printable":
        data = binascii.a2b_qp(encoded)
    else:
        data = encoded.encode("ascii") if isinstance(encoded, str) else encoded
    if limit is None:
        return data, False
    data, cut = _limited(data, limit)
    return data, cut or more


def _wire_bytes(message: Message, payload: str, cap: int | None) -> tuple[str | bytes, bool]:
    """The payload as sent (an ASCII str stands for its bytes), at most ``cap``, and if more."""
    elided = message.elided if isinstance(message, _ParsedPart) else None
    if elided is not None and _TOKEN_START in payload:
        return elided.expand(payload, cap)
    more = cap is not None and len(payload) > cap
    if cap is not None and more:
        payload = payload[:cap]
    return (payload if payload.isascii() else _payload_bytes(payload)), more


def _uudecode(data: bytes) -> bytes:
    """The lines between "begin" and "end", as the stdlib's uu.decode reads them.

    Lines a broken encoder made too long are cut to their stated length, as uu.decode does;
    without a "begin" line the bytes are returned as they are, as get_payload(decode=True) does.
    """
    lines = iter(data.splitlines())
    if not any(line.startswith(b"begin ") for line in lines):
        return data
    out = bytearray()
    for line in lines:
        if line.strip(b" \t\r\n\f") == b"end":
            break
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            with contextlib.suppress(binascii.Error, IndexError):
                out += binascii.a2b_uu(line[: (((line[0] - 32) & 63) * 4 + 5) // 3])
    return bytes(out)


def _limited(data: bytes, limit: int) -> tuple[bytes, bool]:
    return (data, False) if len(data) <= limit else (data[:limit], True)


def _payload_bytes(payload: str) -> bytes:
    """The bytes behind a payload the stdlib parser decoded as ASCII with surrogate escapes."""
    try:
        return payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # a payload set from text, not parsed from bytes
        return payload.encode("raw-unicode-escape")


def _base64(encoded: str | bytes, message: Message) -> bytes:
    """Lenient base64: line breaks and junk skipped, missing padding added, a stray tail dropped.

    What was wrong is registered on the part as the stdlib's get_payload(decode=True) does.
    """
    if _BASE64_JUNK.search(encoded if isinstance(encoded, str) else encoded.decode("latin-1")):
        message.defects.append(errors.InvalidBase64CharactersDefect())
    try:
        return binascii.a2b_base64(encoded)
    except binascii.Error:
        message.defects.append(errors.InvalidBase64PaddingDefect())
    data = encoded.encode("ascii") if isinstance(encoded, str) else encoded
    try:
        return binascii.a2b_base64(data + b"==")
    except binascii.Error:
        cleaned = _NOT_BASE64.sub(b"", data)
        return binascii.a2b_base64(cleaned[: len(cleaned) // 4 * 4])


def _part_text(message: Message, charset: str | None, limit: int) -> tuple[str, bool]:
    """A part's content as text, from at most ``limit`` bytes, and whether more was left out.

    For parsed message/* parts (delivery-status blocks), their header blocks and bodies.
    """
    if message.is_multipart():
        text = "\n".join(_message_text(p, limit) for p in _children(message))
        return (text, False) if len(text) <= limit else (text[:limit], True)
    data, more = _decoded(message, limit)
    if more:
        # Cut after a line break near the end, not inside a multi-byte character.
        newline = data.rfind(b"\n", max(0, len(data) - 4096))
        data = data[: newline + 1] if newline > 0 else data
    return charsets.decode(data, charset).replace("\r\n", "\n"), more


def _message_text(message: Message, limit: int) -> str:
    lines = [f"{name}: {readable(str(value))}" for name, value in message.raw_items()]
    tail = ""
    if not message.is_multipart() and (
        message.wire if isinstance(message, _ParsedPart) else message.get_payload()
    ):
        tail = "\n" + _part_text(message, _MimeView.of(message).charset, limit)[0]
    return "\n".join(lines) + "\n" + tail


def _header_block(message: Message) -> str:
    """The header block of the message inside a message/rfc822 part."""
    inner = _children(message)
    if inner:
        return "".join(f"{k}: {readable(str(v))}\n" for k, v in inner[0].raw_items())
    return ""


def _message_attachment(part: _Part, mime: _MimeView) -> Attachment:
    """A message/* part as an .eml attachment named after its subject."""
    inner = _children(part.message)
    payload = b""
    subject = ""
    if inner:
        payload = _flatten(inner[0])
        subject = decode_words(readable(_first_raw(inner[0], "subject"))).strip()
    elif not part.message.is_multipart():
        payload = _part_bytes(part.message)
    stem = mime.filename or _safe_stem(subject) or "message"
    filename = stem if stem.lower().endswith(".eml") else f"{stem}.eml"
    return Attachment(
        filename=filename,
        content_type=part.ctype,
        payload=payload,
        content_id=mime.content_id,
        inline=mime.disposition == "inline",
    )


class _VerbatimHeaders(Compat32):
    """Serialises headers exactly as parsed.

    compat32 re-folds every header through email.header, which is slow and rewrites the bytes
    an attached message is supposed to keep.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        return f"{name}: {value}{self.linesep}".encode("utf-8", "surrogateescape")


_VERBATIM = _VerbatimHeaders(linesep="\n")


def _flatten(message: Message) -> bytes:
    """The bytes of an enclosed message (the stdlib keeps no offsets, so re-serialise it)."""
    out = io.BytesIO()
    try:
        BytesGenerator(out, mangle_from_=False, policy=_VERBATIM).flatten(message)
    except Exception:  # odd MIME can defeat the generator; the text form is a fair copy
        data = message.as_string().encode("utf-8", "surrogateescape")
    else:
        data = out.getvalue()
    elided = message.elided if isinstance(message, _ParsedPart) else None
    return elided.expand_bytes(data) if elided is not None else data


def _safe_stem(subject: str) -> str:
    """A file-name stem from a subject: no path or control characters, bounded length."""
    stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", subject)
    return _WHITESPACE.sub(" ", stem).strip()[:120]


def _leaf_attachment(part: _Part, mime: _MimeView) -> Attachment:
    # Without a disposition, a part referenced by Content-ID is an inline image of the HTML.
    inline = mime.disposition == "inline" or (
        mime.disposition is None and mime.content_id is not None
    )
    return Attachment(
        filename=mime.filename or _stable_name(part.ctype, part.index),
        content_type=part.ctype,
        payload=_part_bytes(part.message),
        content_id=mime.content_id,
        inline=inline,
    )


def _stable_name(content_type: str, index: int) -> str:
    """part-3.jpg: a deterministic name for an unnamed part, so re-parses agree."""
    ext = _EXTENSIONS.get(content_type) or _MIME_TYPES.guess_extension(content_type) or ".bin"
    return f"part-{index}{ext}"


def _joined(texts: list[str]) -> str:
    if len(texts) == 1:
        return texts[0]
    return "\n".join(t if t.endswith("\n") else t + "\n" for t in texts if t)


def html_to_text(source: str) -> str:
    """A readable plain-text rendering of HTML: classify and threading read text, not markup.

    Regex-based on purpose: it only has to be readable and fast, never faithful, and the
    sanitised HTML is kept alongside for display.
    """
    if not source:
        return ""
    text = _HTML_COMMENT.sub("", source)
    text = _HTML_DROP.sub("", text)
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_CELL.sub(" ", text)
    text = html.unescape(_HTML_TAG.sub("", text)).replace("\r", "")
    text = _LINE_EDGES.sub("\n", _INLINE_SPACE.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip()
