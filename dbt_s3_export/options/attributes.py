"""S3's rules for the attributes every object gets: user metadata, tags, content type.

Checked when the config is parsed, so that a value S3 would refuse (or, worse,
silently drop or alter) fails before any data is read. Metadata travels as HTTP
headers (``x-amz-meta-<key>: <value>``), which carry ASCII only and lose
surrounding whitespace; tags travel URL-encoded and take Unicode letters.
Each check returns ``(problem, fix)`` for the first fault, or None.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# Sum of the UTF-8 bytes of every metadata key and value, per S3's documentation.
MAX_METADATA_BYTES = 2048
MAX_TAGS = 10
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
MAX_CONTENT_TYPE_CHARS = 256
METADATA_PREFIX = "x-amz-meta-"
# HTTP header names ("token" characters of RFC 9110).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_NAME = re.compile(_TOKEN)
# Printable ASCII; S3 would return anything else RFC 2047-encoded, or refuse it.
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_MEDIA_TYPE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*[ \t]*"
)
# Besides letters, digits and spaces, the characters S3 takes in tag keys and values.
_TAG_PUNCTUATION = frozenset("_.:/=+-@")

Problem = tuple[str, str]


def metadata_problem(pairs: Sequence[tuple[str, str]]) -> Problem | None:
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key.lower().startswith(METADATA_PREFIX):
            return (
                f"key {key!r} starts with {METADATA_PREFIX!r}, which S3 adds itself",
                f"Write it as {key[len(METADATA_PREFIX) :]!r}",
            )
        if not _HEADER_NAME.fullmatch(key):
            bad = sorted({ch for ch in key if not _HEADER_NAME.fullmatch(ch)})
            return (
                f"key {key!r} holds {', '.join(repr(ch) for ch in bad)}; metadata keys are sent "
                "as HTTP header names, which take ASCII letters, digits and a few marks such as "
                "- _ . only (some servers drop other keys silently, others refuse the upload)",
                "Use letters, digits and '-' in metadata keys, e.g. 'source-system'",
            )
        if key.lower() in seen:
            return (
                f"keys {seen[key.lower()]!r} and {key!r} differ only in case, and S3 "
                "stores metadata keys in lower case",
                "Keep one of them",
            )
        seen[key.lower()] = key
        if not _HEADER_VALUE.fullmatch(value):
            return (
                f"the value of {key!r} holds characters other than printable ASCII "
                f"({_first_unsafe(value)}); metadata is sent as HTTP headers",
                "Percent-encode the value (e.g. caf%C3%A9), or put it in 'tags', which take "
                "Unicode",
            )
        if value != value.strip(" \t"):
            return (
                f"the value of {key!r} starts or ends with whitespace, which HTTP drops",
                "Remove the surrounding spaces",
            )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in pairs)
    if size > MAX_METADATA_BYTES:
        return (
            f"is {size} bytes (keys and values), over S3's {MAX_METADATA_BYTES}-byte limit "
            "for user metadata",
            "Shorten or drop some entries",
        )
    return None


def _first_unsafe(value: str) -> str:
    ch = next(c for c in value if not _HEADER_VALUE.fullmatch(c))
    return f"{ch!r} at position {value.index(ch)}"


def _tag_char_ok(ch: str) -> bool:
    return ch in _TAG_PUNCTUATION or (unicodedata.category(ch)[0] in "LNZ" and ch.isprintable())


def tags_problem(pairs: Sequence[tuple[str, str]]) -> Problem | None:
    if len(pairs) > MAX_TAGS:
        return (f"has {len(pairs)} tags; S3 allows at most {MAX_TAGS} per object", "")
    rule = "letters, digits, spaces and _ . : / = + - @"
    for key, value in pairs:
        if len(key) > MAX_TAG_KEY_CHARS:
            return (
                f"tag key {key[:20]!r}... is {len(key)} characters; S3 allows {MAX_TAG_KEY_CHARS}",
                "Shorten it",
            )
        if len(value) > MAX_TAG_VALUE_CHARS:
            return (
                f"the value of tag {key!r} is {len(value)} characters; S3 allows "
                f"{MAX_TAG_VALUE_CHARS}",
                "Shorten it",
            )
        if key.lower().startswith("aws:"):
            return (f"tag key {key!r} uses the prefix 'aws:', which AWS reserves", "Rename it")
        for text, what in ((key, f"tag key {key!r}"), (value, f"the value of tag {key!r}")):
            bad = sorted({ch for ch in text if not _tag_char_ok(ch)})
            if bad:
                return (
                    f"{what} holds {', '.join(repr(ch) for ch in bad)}; S3 takes {rule} in tags",
                    "Replace those characters",
                )
    return None


def content_type_problem(text: str) -> Problem | None:
    example = "For example text/csv; charset=utf-8"
    if len(text) > MAX_CONTENT_TYPE_CHARS:
        return (f"is {len(text)} characters long", f"{example}, at most {MAX_CONTENT_TYPE_CHARS}")
    if not _MEDIA_TYPE.fullmatch(text):
        return (
            f"{text!r} is not a media type (type/subtype, then optional ; name=value "
            "parameters, in ASCII)",
            example,
        )
    return None
