"""Scrubbing known secret values out of text, in every spelling text may hold them
(trimmed, escaped by repr or JSON, URL-encoded)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote

REDACTED = "***"
# Shorter values are not scrubbed from text: they would mangle ordinary words.
_MIN_REDACT_LENGTH = 4


def secret_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` that text may hold.

    As given and with surrounding whitespace trimmed (a key read from a file often
    ends in a newline), each also as repr, JSON and HTML escape it and as URLs
    encode it (upper- and lower-case percent escapes, ``+`` for spaces, twice).
    Text holding the secret with whitespace added holds the trimmed form.
    """
    forms: set[str] = set()
    for core in {secret, secret.strip()}:
        if not core:
            continue
        encoded = quote(core, safe="")
        forms |= {
            core,
            repr(core)[1:-1],
            core.encode("unicode_escape").decode("ascii"),
            json.dumps(core)[1:-1],
            json.dumps(core)[1:-1].replace("/", "\\/"),
            json.dumps(core, ensure_ascii=False)[1:-1],
            html.escape(core),
            encoded,
            re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded),
            quote(core, safe="/"),
            quote_plus(core),
            quote(encoded, safe=""),
        }
    return {form for form in forms if len(form) >= _MIN_REDACT_LENGTH}


def url_secrets(url: Any) -> list[str]:
    """The user and password an endpoint URL holds before its last ``@``, also decoded."""
    if not isinstance(url, str) or "@" not in url:
        return []
    userinfo = url.split("://", 1)[-1].rsplit("@", 1)[0]
    parts = [userinfo, *userinfo.split(":", 1)]
    return parts + [unquote(part) for part in parts]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every spelling of every secret value replaced by ``***``."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


__all__ = ["REDACTED", "redact", "secret_forms", "url_secrets"]
