"""Synthetic but realistic sales mail, for crash tests and benchmarks (deterministic by seed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

FIRST = [
    "Anna",
    "Ben",
    "Chai",
    "Dara",
    "Elif",
    "Femi",
    "Grace",
    "Hiro",
    "Ines",
    "Jun",
    "Kofi",
    "Lena",
    "Mai",
    "Nikhil",
    "Olga",
    "Pim",
    "Quinn",
    "Rosa",
    "Sami",
    "Tariq",
]
LAST = ["Meyer", "Okafor", "Srisuk", "Tanaka", "Novak", "Garcia", "Chen", "Kowalski", "Berg"]
COMPANIES = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "hooli",
    "vandelay",
]
FREE = ["gmail.com", "yahoo.com", "outlook.com"]
PRODUCTS = [
    "office chairs",
    "standing desks",
    "printer paper",
    "toner",
    "filing cabinets",
    "monitor arms",
    "whiteboards",
]


def enquiry(n: int, rng: random.Random, when: datetime) -> tuple[EmailMessage, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = f"{rng.choice(COMPANIES)}{n % 97}.example" if rng.random() < 0.75 else rng.choice(FREE)
    address = f"{first.lower()}.{last.lower()}{n}@{domain}"
    product = rng.choice(PRODUCTS)
    msg = EmailMessage()
    msg["From"] = f"{first} {last} <{address}>"
    msg["To"] = "sales@northwind.example"
    msg["Subject"] = f"Quote request: {rng.randint(5, 500)} {product}"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<enq-{n}@{domain}>"
    msg.set_content(
        f"Hello,\n\nWe are interested in {product} for our new office. Could you send a "
        f"quote and delivery times?\n\nBest regards,\n{first} {last}\n"
    )
    return msg, address


def reply_to(original: EmailMessage, n: int, when: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = original["From"]
    msg["To"] = "sales@northwind.example"
    msg["Subject"] = f"Re: {original['Subject']}"
    msg["Date"] = format_datetime(when)
    domain = str(original["Message-ID"]).rsplit("@", 1)[1].rstrip(">")
    msg["Message-ID"] = f"<re-{n}@{domain}>"
    msg["In-Reply-To"] = original["Message-ID"]
    msg["References"] = original["Message-ID"]
    msg.set_content("Thanks, one more question: can you deliver next week?\n\n> earlier text\n")
    return msg


def auto_reply(original: EmailMessage, n: int, when: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = original["From"]
    msg["To"] = "sales@northwind.example"
    msg["Subject"] = f"Automatic reply: {original['Subject']}"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<auto-{n}@autoreply.example>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("I am out of the office until Monday.\n")
    return msg


def messages(count: int, seed: int = 7) -> list[bytes]:
    """``count`` messages: mostly new enquiries, some replies, auto-replies and duplicates."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    sent: list[EmailMessage] = []
    out: list[bytes] = []
    for n in range(count):
        when = start + timedelta(minutes=7 * n)
        roll = rng.random()
        if sent and roll < 0.15:
            msg = reply_to(rng.choice(sent), n, when)
        elif sent and roll < 0.20:
            msg = auto_reply(rng.choice(sent), n, when)
        elif out and roll < 0.22:
            out.append(rng.choice(out))  # the same message delivered twice
            continue
        else:
            msg, _ = enquiry(n, rng, when)
            sent.append(msg)
        out.append(msg.as_bytes())
    return out


def write_mbox(path: Path, count: int, seed: int = 7) -> int:
    """An mboxrd file of ``count`` messages; returns its size in bytes."""
    with path.open("wb") as handle:
        for data in messages(count, seed):
            handle.write(b"From sender@example.com Mon Jan  5 08:00:00 2026\n")
            for line in data.splitlines(keepends=True):
                if line.lstrip(b">").startswith(b"From "):
                    line = b">" + line
                handle.write(line)
            if not data.endswith(b"\n"):
                handle.write(b"\n")
            handle.write(b"\n")
    return path.stat().st_size
