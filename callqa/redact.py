"""Redaction of personal numbers in Chinese call text: mobile and landline numbers, ID card numbers, bank cards, e-mail.

Used for logs (logs never carry a customer's number) and, optionally, before scoring. Each finding is replaced
by a tag such as ``[手机号]``. Checks beyond the pattern keep ordinary digits alone: ID numbers must carry a real
birth date and checksum, bank cards a UnionPay prefix or a valid Luhn digit, and company hotlines (400/800…)
are not personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from callqa.calls import Call

TAGS = {
    "email": "[邮箱]",
    "id_card": "[身份证号]",
    "bank_card": "[银行卡号]",
    "mobile": "[手机号]",
    "landline": "[座机号]",
}

_NOT_DIGIT_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_DIGIT_AFTER = r"(?![0-9A-Za-z])"

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_ID_CARD = re.compile(_NOT_DIGIT_BEFORE + r"[1-9]\d{5}(?:19|20)\d{2}[01]\d[0-3]\d\d{3}[\dXx]" + _NOT_DIGIT_AFTER)
# 16–19 digits, optionally in groups of four separated by a space or hyphen.
_BANK_CARD = re.compile(_NOT_DIGIT_BEFORE + r"\d{4}(?:[ \-]?\d{4}){3}(?:[ \-]?\d{1,3})?" + _NOT_DIGIT_AFTER)
_MOBILE = re.compile(
    r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[ \-]?)?1[3-9]\d(?:[ \-]?\d{4}){2}" + _NOT_DIGIT_AFTER
)
# Area code (010, 02x, 0xxx) then a 7–8 digit local number; with a separator or bracket, or written solid.
_LANDLINE = re.compile(
    _NOT_DIGIT_BEFORE + r"(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3})[ \-]?[2-9]\d{6,7}(?:-\d{1,5})?" + _NOT_DIGIT_AFTER
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def _valid_id_card(number: str) -> bool:
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17].upper()


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _bank_card(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    # UnionPay cards (62…) are the common case in China and are redacted on the prefix alone: a mistyped card
    # number is still a card number. Other 16–19 digit runs need a valid Luhn digit and a card-network prefix.
    return 16 <= len(digits) <= 19 and (digits.startswith("62") or (digits[0] in "345" and _luhn(digits)))


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


def find_pii(text: str) -> list[Finding]:
    """Personal numbers and addresses in ``text``, non-overlapping, in order of position."""
    found: list[Finding] = []
    taken = [False] * len(text)

    def claim(kind: str, pattern: re.Pattern[str], accept=lambda s: True) -> None:
        for m in pattern.finditer(text):
            if any(taken[m.start() : m.end()]) or not accept(m.group()):
                continue
            found.append(Finding(kind, m.start(), m.end()))
            taken[m.start() : m.end()] = [True] * (m.end() - m.start())

    claim("email", _EMAIL)  # first: an e-mail's local part is often a phone or QQ number
    claim("id_card", _ID_CARD, _valid_id_card)
    claim("bank_card", _BANK_CARD, _bank_card)
    claim("mobile", _MOBILE)
    claim("landline", _LANDLINE)
    return sorted(found, key=lambda f: f.start)


def redact(text: str) -> str:
    """``text`` with every finding of :func:`find_pii` replaced by its tag (``[手机号]``, ``[身份证号]`` …)."""
    out, last = [], 0
    for f in find_pii(text):
        out.append(text[last : f.start])
        out.append(TAGS[f.kind])
        last = f.end
    out.append(text[last:])
    return "".join(out)


def redact_call(call: Call) -> Call:
    """A copy of ``call`` with every turn's text redacted (the call itself is left as it is)."""
    return call.model_copy(update={"turns": [t.model_copy(update={"text": redact(t.text)}) for t in call.turns]})
