"""Outbound mail as bytes: our Message-ID carrying the lead's token, threading, bodies, files.

Pure: values in, an ``EmailMessage`` and its bytes out. The Message-ID is fixed here, before
anything is queued, so a retry after an unknown SMTP outcome resends the very same message
and a reply to it threads back by In-Reply-To, References, or the token inside the id.

Every header value a person or the database gave is checked for CR, LF and NUL first: one
of them in a Subject is a header injection (``Bcc:`` smuggled in), so it is refused naming
the header, never folded away or sent.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime

import nh3
from markdown_it import MarkdownIt

from worker.errors import ValidationError
from worker.mail.addresses import normalize_email
from worker.mail.filetypes import content_type
from worker.mail.message import Address

# References keeps the thread's first message and its ten newest (RFC 5322 3.6.4 lets a
# client trim the middle; Thunderbird and mutt keep the root and the tail the same way), so
# a 200-message thread does not grow a 10 KB header that servers refuse.
MAX_REFERENCES = 11
_UNSAFE = ("\r", "\n", "\0")
_ID_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,76}$")
# What an executive's Markdown may become: text, emphasis, lists, tables, quotes, code, links.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_URL_SCHEMES = {"http", "https", "mailto"}
_HTML_PAGE = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n<body>\n{body}</body></html>\n'
)


@dataclass(frozen=True, slots=True)
class OutboundFile:
    """A file to attach; an empty ``content_type`` is guessed from the name, then the bytes."""

    filename: str
    data: bytes
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class Draft:
    """Everything an outbound mail says. ``token`` is the lead's signed token (``L42-…``)."""

    sender: Address
    to: tuple[Address, ...]
    subject: str
    text: str
    token: str
    id_domain: str
    cc: tuple[Address, ...] = ()
    markdown: bool = False
    # The lead's latest message: its Message-ID and its own References (bare ids).
    parent_id: str | None = None
    parent_references: tuple[str, ...] = ()
    attachments: tuple[OutboundFile, ...] = ()
    # Added to the end of the subject unless it is there already (``[#L42-…]``).
    subject_tag: str | None = None
    # e.g. ("Auto-Submitted", "auto-replied") on an acknowledgement (RFC 3834).
    extra_headers: tuple[tuple[str, str], ...] = ()
    date: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The random part of the Message-ID; tests fix it.
    unique: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class Composed:
    """The message and what the outbox and the messages row record of it."""

    message: EmailMessage
    raw: bytes
    message_id: str  # bare, without angle brackets, as the messages table stores ids
    subject: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    html: str | None

    @property
    def envelope_recipients(self) -> tuple[str, ...]:
        """To and Cc, each once (an address in both gets one copy)."""
        return tuple(dict.fromkeys(a.lower() for a in (*self.to, *self.cc)))


def check_header(name: str, value: str) -> str:
    """``value`` as given, or ValidationError naming the header when it holds CR, LF or NUL."""
    if any(c in value for c in _UNSAFE):
        raise ValidationError(
            f"{name}: CR, LF or NUL in a header value is refused (header injection)", name
        )
    return value


def message_id(token: str, domain: str, unique: str) -> str:
    """``L42-abcdefgh.<unique>@domain``: threading step 2 finds the token in it."""
    check_header("Message-ID", f"{token}{unique}{domain}")
    ascii_domain = normalize_email(f"x@{domain}").rpartition("@")[2]
    if not _ID_PART.match(token) or not _ID_PART.match(unique):
        raise ValidationError(f"Message-ID: {token}.{unique} is not a valid id part", token)
    if not ascii_domain or not _DOMAIN.match(ascii_domain):
        raise ValidationError(f"Message-ID: {domain!r} is not a domain", domain)
    return f"{token}.{unique}@{ascii_domain}"


def references_for(parent_id: str | None, parent_references: Sequence[str]) -> tuple[str, ...]:
    """The parent's References plus the parent, first one and newest ten kept, each once."""
    ids = [r for r in dict.fromkeys(parent_references) if r != parent_id]
    ids += [parent_id] if parent_id else []  # the parent is the newest, whatever it quoted
    ids = [i for i in ids if _plain_id(i)]
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return tuple(ids)


def _plain_id(value: str) -> bool:
    """An id we can write back between angle brackets without breaking the header."""
    return bool(value) and not any(c in value for c in " \t\r\n\0<>") and "@" in value


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def render_markdown(text: str) -> str:
    """Markdown → an HTML page, sanitised: raw HTML in the source is shown as text, and nh3
    keeps only safe tags and http(s)/mailto links whatever the renderer let through."""
    body = nh3.clean(_MARKDOWN.render(text), url_schemes=_URL_SCHEMES)
    return _HTML_PAGE.format(body=body)


def _address(header: str, value: Address) -> tuple[HeaderAddress, str]:
    check_header(header, value.name)
    check_header(header, value.email)
    plain = normalize_email(value.email)
    if not plain or any(c in value.email.strip() for c in "<>,;: \t"):
        raise ValidationError(f"{header}: {value.email!r} is not an address", value.email)
    local, _, domain = plain.rpartition("@")
    if not local.isascii():
        raise ValidationError(
            f"{header}: {plain!r} has a non-ASCII local part (SMTPUTF8 is not supported)", plain
        )
    name = " ".join(value.name.split())
    return HeaderAddress(display_name=name, username=local, domain=domain), plain


def _addresses(header: str, values: Iterable[Address]) -> tuple[list[HeaderAddress], list[str]]:
    pairs = [_address(header, v) for v in values]
    return [h for h, _ in pairs], [p for _, p in pairs]


def _subject(draft: Draft) -> str:
    subject = " ".join(check_header("Subject", draft.subject).split())
    if draft.subject_tag:
        tag = check_header("Subject", draft.subject_tag)
        if tag.lower() not in subject.lower():
            subject = f"{subject} {tag}" if subject else tag
    return subject


def compose(draft: Draft) -> Composed:
    """Build the message; ValidationError (one line, naming the header) when it cannot be."""
    sender, _ = _address("From", draft.sender)
    to_headers, to = _addresses("To", draft.to)
    cc_headers, cc = _addresses("Cc", draft.cc)
    if not to:
        raise ValidationError("To: at least one recipient is needed", None)
    subject = _subject(draft)
    if draft.parent_id is not None:
        check_header("In-Reply-To", draft.parent_id)
    for ref in draft.parent_references:
        check_header("References", ref)
    if "\0" in draft.text:
        raise ValidationError("the body contains a NUL character", None)
    own_id = message_id(draft.token, draft.id_domain, draft.unique)
    references = references_for(draft.parent_id, draft.parent_references)
    in_reply_to = (draft.parent_id,) if draft.parent_id and _plain_id(draft.parent_id) else ()

    msg = EmailMessage(policy=policy.SMTP)
    msg["Message-ID"] = f"<{own_id}>"
    msg["Date"] = format_datetime(draft.date.astimezone(UTC))
    msg["From"] = sender
    msg["To"] = to_headers
    if cc_headers:
        msg["Cc"] = cc_headers
    msg["Subject"] = subject
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to[0]}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in draft.extra_headers:
        if not _HEADER_NAME.match(check_header("header name", name)):
            raise ValidationError(f"{name!r} is not a header name", name)
        msg[name] = check_header(name, value)

    text = draft.text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    msg.set_content(text, charset="utf-8")
    html = render_markdown(text) if draft.markdown else None
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8")
    for item in draft.attachments:
        name = check_header("attachment filename", item.filename)
        kind = item.content_type or content_type(name, item.data)
        maintype, _, subtype = kind.partition("/")
        params = {"charset": "utf-8"} if maintype == "text" and _utf8(item.data) else None
        msg.add_attachment(
            item.data, maintype=maintype, subtype=subtype, filename=name, params=params
        )
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # the stdlib repeats it on every part it makes
    return Composed(
        message=msg,
        raw=msg.as_bytes(policy=policy.SMTP),
        message_id=own_id,
        subject=subject,
        to=tuple(to),
        cc=tuple(cc),
        in_reply_to=in_reply_to,
        references=references,
        html=html,
    )
