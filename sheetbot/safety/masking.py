"""Mask personal data in text that leaves sheetbot (audit exports, every log line).

The board's rows are customers' data; an audit export goes to people who need the trail, not the
contacts in it. What is masked, and by whom it is decided:

- e-mail addresses, unicode (IDN) domains and quoted local parts included: `j***@example.com`;
- phone numbers: `[phone]`, decided by `phonenumbers` (Google's libphonenumber metadata);
- IBANs: `[iban]`, by their mod-97 checksum (`stdnum.iban`);
- card numbers: `[card]`, by the Luhn checksum (`stdnum.luhn`) plus a plausible issuer and length;
- national ids: `[id]`, each by its own checksum in `stdnum`: US SSN (written 123-45-6789, or after
  "SSN"), German Steuer-ID (`de.idnr`), French NIR (`fr.nir`), Spanish DNI and NIE (`es.dni`, `es.nie`)
  and Italian codice fiscale (`it.codicefiscale`).

Just as important is what stays: an export whose dates, prices and order numbers are masked is useless
for an audit. So a number is masked only when a checksum or the phone metadata says it is one of the
above; a cheap regex finds the few candidates first, so the libraries run only on those and a log line
without long digit runs or an `@` costs a couple of regex scans.

Phone rules, from strongest evidence to weakest: a `+`/`00` international number that `phonenumbers`
finds possible; anything after a phone label (`tel:`, `Phone:`, `call`, `mobile`, ...) that is possible
in one of `REGIONS` or Spain; a national number that starts with its trunk `0`, is valid in one of
`REGIONS` *and* is grouped the way that country writes it (`Leniency.STRICT_GROUPING`, which keeps
`2026-000123` and ZIP+4 codes readable);
and North American numbers written 3-3-4 (`555.123.4567`) or as ten bare digits, which
`phonenumbers` only calls "possible" because 555 numbers are fictional but are exactly what people
type in examples. A number right after an id label (`#`, `order`, `invoice`, `id`, ...) is an id, not
a phone, unless it is international or labelled as a phone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import overload

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher
from stdnum import iban, luhn
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.us import ssn

#: Countries whose national phone formats are recognised without a `+`. Spain is reached through
#: `+34` or a label only: its nine-digit numbers collide with US ZIP+4 codes.
REGIONS = ("US", "GB", "DE", "FR", "IT", "NL", "AT", "CH")

# --- e-mail ---------------------------------------------------------------------------------------
_LOCAL_CHAR = r"[\w.!%'*+~-]"
_DOMAIN = r"[\w-]+(?:\.[\w-]+)+"
EMAIL = re.compile(rf'(?<![\w.!%\'*+~-])(?:"\s*([^"\s\\])[^"\r\n]{{0,63}}"|({_LOCAL_CHAR}){_LOCAL_CHAR}*)@({_DOMAIN})')


def _mask_email(match: re.Match[str]) -> str:
    first = match.group(1) or match.group(2)
    return f"{first}***@{match.group(3)}"


# --- IBAN and letter-bearing national ids ---------------------------------------------------------
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b", re.IGNORECASE)
_LETTER_ID = re.compile(
    r"\b(?:\d{8}[ -]?[A-Z]|[XYZ][ -]?\d{7}[ -]?[A-Z]|[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z])\b", re.IGNORECASE
)


def _checked(is_valid: Callable[[str], bool], placeholder: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return placeholder if is_valid(match.group(0)) else match.group(0)

    return replace


def _is_letter_id(text: str) -> bool:
    return dni.is_valid(text) or nie.is_valid(text) or codicefiscale.is_valid(text)


# --- digit runs: cards, SSN, Steuer-ID, NIR, phones -----------------------------------------------
#: A run that might be one of them: optional `+`/`00`, digits with spaces, dashes, slashes, dots or
#: parentheses between them. A `:` right after letters (`tel:`, `Phone:`) may precede it, a `:` after
#: a digit (a time) may not.
_RUN = re.compile(r"(?<![\w+.,/-])(?<!\d:)(?:\(?\+|00)?\(?\d[\d \t\u00a0()./-]{5,}\d\)?(?![\w.,]?\d)(?![\w@])")
_DATE = re.compile(r"(?<!\d)(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})(?!\d)")
_DECIMAL_END = re.compile(r"\d[.,]\d{1,2}$")
_DECIMAL = re.compile(r"\d+[.,]\d+")
_NANP = {"US", "CA"}
_SSN_SHAPE = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")
_PHONE_LABEL = re.compile(
    r"(?:\b(?:tel|telephone|phone|ph|mobile|mobil|cell|fax|call|sms|whatsapp|telefon|handy)\b"
    r"(?:\s*(?:no|nr|number|#)\.?)?(?:\s+(?:me|us)(?:\s+(?:at|on))?)?|[☎📞])\W{0,3}$",
    re.IGNORECASE,
)
_ID_LABEL = re.compile(
    r"(?:#|\b(?:order|invoice|inv|ref|reference|tracking|sku|ticket|id|account|acct|rechnung|bestellung|commande|"
    r"facture|pedido|factura)\b(?:\s*(?:no|nr|number)\.?)?)"
    r"\W{0,3}$",
    re.IGNORECASE,
)
_SSN_LABEL = re.compile(r"\b(?:ssn|social security(?: number)?)\W{0,3}$", re.IGNORECASE)
#: Card issuers by their first digits (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay,
#: Maestro) and the lengths they issue.
_CARD_IIN = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6|35|3[068]|5[06-9]")
_CARD_LENGTHS = range(13, 20)


def _is_card(digits: str, text: str) -> bool:
    if len(digits) not in _CARD_LENGTHS or re.search(r"[./()]", text):
        return False
    return bool(_CARD_IIN.match(digits)) and luhn.is_valid(digits)


def _is_national_id(digits: str, text: str, before: str) -> bool:
    if _SSN_SHAPE.fullmatch(text) or (_SSN_LABEL.search(before) and len(digits) == 9):
        return ssn.is_valid(digits)
    if len(digits) == 11:
        return idnr.is_valid(digits)
    if len(digits) == 15:
        return nir.is_valid(digits)
    return False


def _nanp_possible(digits: str, text: str) -> bool:
    """A North American number written 3-3-4 (optionally after a 1) or as ten bare digits.

    The area code's first digit (2-9) keeps Unix timestamps and most counters out."""
    groups = [len(g) for g in re.findall(r"\d+", text)]
    if groups not in ([3, 3, 4], [1, 3, 3, 4], [10]):
        return False
    national = digits[1:] if len(digits) == 11 else digits
    if groups == [1, 3, 3, 4] and digits[0] != "1":
        return False
    return national[0] in "23456789"


def _is_possible_anywhere(text: str) -> bool:
    for region in (*REGIONS, "ES"):
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(text, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def _is_phone(text: str, digits: str, before: str) -> bool:
    if not 7 <= len(digits) <= 15:
        return False
    if text.lstrip("(").startswith(("+", "00")):
        number = "+" + text.lstrip("(+")[2:] if text.lstrip("(").startswith("00") else text
        try:
            return phonenumbers.is_possible_number(phonenumbers.parse(number, None))
        except phonenumbers.NumberParseException:
            return False
    if _PHONE_LABEL.search(before):
        return _is_possible_anywhere(text)
    if _ID_LABEL.search(before):
        return False
    if _nanp_possible(digits, text):
        return True
    if not text.lstrip("(").startswith("0") or _DECIMAL.fullmatch(text):
        return False  # the other regions' national numbers begin with their trunk 0; 0.0045 is a cost
    for region in REGIONS:
        if region in _NANP:
            continue  # North American numbers were decided above
        try:
            if not phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                continue
        except phonenumbers.NumberParseException:
            continue
        for found in PhoneNumberMatcher(text, region, leniency=Leniency.STRICT_GROUPING):
            if found.start == 0 and found.end == len(text):
                return True
    return False


def _mask_run(match: re.Match[str]) -> str:
    raw = match.group(0)
    text = raw.rstrip(" \t\u00a0")
    if "(" not in text.lstrip("(") and text.endswith(")"):
        text = text[:-1]
    tail = raw[len(text) :]
    if _DATE.search(text) or _DECIMAL_END.search(text):
        return raw
    digits = re.sub(r"\D", "", text)
    before = match.string[max(0, match.start() - 24) : match.start()]
    if text.lstrip("(").startswith(("+", "00")):
        return "[phone]" + tail if _is_phone(text, digits, before) else raw
    if _is_card(digits, text):
        return "[card]" + tail
    if _is_national_id(digits, text, before):
        return "[id]" + tail
    if _is_phone(text, digits, before):
        return "[phone]" + tail
    return raw


_MAYBE_PERSONAL = re.compile(r"@|\d{2}")


def mask_text(text: str) -> str:
    """E-mail addresses become `j***@example.com`; phones, IBANs, cards and national ids a placeholder."""
    if not text or not _MAYBE_PERSONAL.search(text):
        return text
    if "@" in text:
        text = EMAIL.sub(_mask_email, text)
    text = _IBAN.sub(_checked(iban.is_valid, "[iban]"), text)
    text = _LETTER_ID.sub(_checked(_is_letter_id, "[id]"), text)
    return _RUN.sub(_mask_run, text)


@overload
def mask(value: str) -> str: ...
@overload
def mask(value: dict[str, object]) -> dict[str, object]: ...
@overload
def mask(value: object) -> object: ...
def mask(value: object) -> object:
    """Mask every string inside a JSON-like value (dicts, lists), keys included."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask(k): mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value
