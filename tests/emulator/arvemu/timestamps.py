"""Timestamps as the Arvados controller writes them: UTC, nine fractional digits."""
from __future__ import annotations

import datetime
import re

_FRACTION = re.compile(r"\.(\d+)")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_timestamp(moment: datetime.datetime) -> str:
    """2026-11-26T19:56:41.294780000Z: the database keeps microseconds, the controller pads to nanoseconds."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def now_timestamp() -> str:
    return format_timestamp(utcnow())


def _round_fraction(match: re.Match) -> str:
    digits = match.group(1)
    if len(digits) <= 6:
        return "." + digits
    micros = round(int(digits) / 10 ** (len(digits) - 6))
    return f".{min(micros, 999999):06d}"


def parse_timestamp(text: str) -> datetime.datetime:
    """Parses the ISO 8601 forms clients send; times without a zone are UTC, as the server reads them."""
    cleaned = text.strip()
    if _DATE_ONLY.match(cleaned):
        cleaned += "T00:00:00"
    cleaned = _FRACTION.sub(_round_fraction, cleaned, count=1)
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    cleaned = cleaned.replace(" UTC", "+00:00").replace(" ", "T", 1)
    moment = datetime.datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def normalize_timestamp(text: str) -> str:
    return format_timestamp(parse_timestamp(text))


def unix_seconds(text: str) -> int:
    return int(parse_timestamp(text).timestamp())


def add_seconds(text: str, seconds: int) -> str:
    return format_timestamp(parse_timestamp(text) + datetime.timedelta(seconds=seconds))
