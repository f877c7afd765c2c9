"""Raw message bytes to an InboundMessage: mail-parser for the MIME tree, our decoding on top."""

from __future__ import annotations

import base64
import binascii
import email
import email.utils
import hashlib
import html
import io
import mimetypes
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import Message
from email.policy import Compat32

import mailparser
import nh3
from mailparser.exceptions import MailParserRecursionError

from worker.errors import ParseError
from worker.mail import charsets
from worker.mail.message import Address, Attachment, InboundMessage, ReportPart

MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_FIELDS = 1000  # decoded into InboundMessage.headers; the rest is dropped with a defect
MAX_HEADER_VALUE = 16 * 1024  # characters kept per decoded header value
MAX_ID_LENGTH = 512  # a longer Message-ID is treated as absent: it would not fit a DB index
MAX_JUNK_LINES = 32  # lines skipped looking for the first header before giving up
MAX_DEPTH = 64  # MIME nesting walked; deeper parts are reported, not followed

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

    mail-parser supplies the stdlib ``Message`` tree, its defect categories and its forgiving
    Date parser. Bodies, names and headers are decoded here from the part bytes, because
    mail-parser's own text drops 8-bit header bytes, leaves ISO-2022-JP undecoded and names
    unnamed parts randomly (so two parses of one message would differ).
    """
    start, junk_lines = _message_start(raw)
    normalized = _normalize_from(raw, start)
    content_hash = hashlib.sha256(normalized).hexdigest()
    capped, cap_defects = cap_header_block(normalized, max_header_bytes)
    message, categories, date = _load(capped)

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
    return InboundMessage(
        message_id=message_id or _synthetic_id(content_hash),
        content_hash=content_hash,
        size=len(raw),
        subject=headers.decoded.get("subject", ("",))[0],
        from_=_addresses(headers.raw.get("from", [])),
        sender=next(iter(_addresses(headers.raw.get("sender", []))), None),
        reply_to=_addresses(headers.raw.get("reply-to", [])),
        to=_addresses(headers.raw.get("to", [])),
        cc=_addresses(headers.raw.get("cc", [])),
        in_reply_to=message_ids(" ".join(headers.raw.get("in-reply-to", []))),
        references=message_ids(" ".join(headers.raw.get("references", []))),
        date=date,
        text=text if text.strip() else html_to_text(html_source),
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


def cap_header_block(data: bytes, limit: int) -> tuple[bytes, list[str]]:
    """Drop header fields that would take the header block past ``limit`` bytes.

    Fields are skipped, not cut, so a giant Subject early in the block does not take the
    Content-Type after it down with it; the body is kept untouched.
    """
    end = data.find(b"\n\n")
    if (end + 1 if end >= 0 else len(data)) <= limit:
        return data, []
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
        return data, []
    names = ", ".join(sorted(set(skipped)))
    defect = f"HeaderBlockTooLarge: {len(skipped)} field(s) over {limit} bytes skipped: {names}"
    return b"".join(kept) + data[pos:], [defect[:300]]


def _load(data: bytes) -> tuple[Message, set[str], datetime | None]:
    """Parse with mail-parser; fall back to the bare stdlib tree if mail-parser itself fails.

    mail-parser runs heuristics on sender-controlled input; a bug there must cost us its
    extras (defect categories, lenient dates), not the message.
    """
    try:
        parsed = mailparser.parse_from_bytes(data)
    except MailParserRecursionError as exc:
        raise ParseError("MIME structure nested too deeply", None) from exc
    except Exception as exc:  # see docstring: degrade, never lose the message
        try:
            message = email.message_from_bytes(data)
        except RecursionError as inner:
            raise ParseError("MIME structure nested too deeply", None) from inner
        return message, {f"MailParserFailed({type(exc).__name__})"}, _stdlib_date(message)
    tree: Message = parsed.message
    date: datetime | None = parsed.date
    return tree, set(parsed.defects_categories), date


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


def _addresses(values: Iterable[str]) -> tuple[Address, ...]:
    """Mailboxes of an address header: RFC 2047 names decoded, domain lower-cased, deduplicated.

    Entries without an @ (group names, "undisclosed-recipients:;", bare words) are not mailboxes.
    """
    found: dict[str, Address] = {}
    for name, addr in email.utils.getaddresses(list(values)):
        local, at, domain = addr.strip().rpartition("@")
        if not at or not local or not domain:
            continue
        address = f"{local}@{domain.lower()}"
        display = _WHITESPACE.sub(" ", decode_words(name)).strip().strip("\"'").strip()
        if display.lower() == address.lower():
            display = ""
        found.setdefault(address.lower(), Address(display, address))
    return tuple(found.values())


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
            body.categories.update(type(d).__name__ for d in part.message.defects)
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
        text = _part_text(part.message, mime.charset)
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
        text = _part_text(part.message, mime.charset)
        (body.html if part.ctype == "text/html" else body.plain).append(text)
        # Named inline text is both shown in the body and offered as a file (as mail-parser does).
        if not mime.filename or mime.disposition != "inline":
            return
    body.attachments.append(_leaf_attachment(part, mime))


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
        for name, value in message.raw_items():
            key = name.lower()
            if key in _PARAM_HEADERS:
                params[name] = readable(str(value))
            elif key == "content-id" and content_id is None:
                content_id = readable(str(value)).strip().strip("<>").strip() or None
        raw_name = params.get_filename()
        filename = (
            _WHITESPACE.sub(" ", decode_words(readable(raw_name))).strip() if raw_name else ""
        )
        return cls(
            params.get_content_charset(), params.get_content_disposition(), filename, content_id
        )


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


def _part_bytes(message: Message) -> bytes:
    payload = message.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _part_text(message: Message, charset: str | None) -> str:
    """A part's content as text; for parsed message/* parts, their header blocks and bodies."""
    if message.is_multipart():
        return "\n".join(_message_text(p) for p in _children(message))
    return charsets.decode(_part_bytes(message), charset).replace("\r\n", "\n")


def _message_text(message: Message) -> str:
    lines = [f"{name}: {readable(str(value))}" for name, value in message.raw_items()]
    tail = ""
    if not message.is_multipart() and _part_bytes(message):
        tail = "\n" + _part_text(message, _MimeView.of(message).charset)
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
        return message.as_string().encode("utf-8", "surrogateescape")
    return out.getvalue()


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
