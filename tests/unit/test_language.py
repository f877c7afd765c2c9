"""Language guessing for routing: declared, else by script."""

from __future__ import annotations

import pytest

from worker.mail.language import guess_language, script_language
from worker.mail.message import InboundMessage


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("สวัสดีครับ ขอใบเสนอราคา 200 ชิ้น", "th"),
        ("お見積もりをお願いします", "ja"),
        ("見積書をお願いします", "ja"),
        ("请给我报价", "zh"),
        ("견적 부탁드립니다", "ko"),
        ("Здравствуйте, пришлите цену", "ru"),
        ("Hello, please send a quote", ""),
        ("Quote for 200 chairs ขอบคุณ", "th"),
        ("Grüße aus München, ça va? Ærø ŁÓDŹ", ""),  # accented Latin names no language
        ("A long English enquiry " * 40 + "— 見積もり", ""),  # under the share needed
        ("Price list please: €, ™ and “quotes”", ""),  # symbols beyond Latin are not letters
        ("", ""),
    ],
)
def test_script_language(text: str, language: str) -> None:
    assert script_language(text) == language


def test_declared_content_language_wins() -> None:
    msg = InboundMessage(
        message_id="x@y",
        content_hash="0" * 64,
        size=10,
        subject="สวัสดี",
        headers={"content-language": ("de-DE, en",)},
    )
    assert guess_language(msg) == "de"
