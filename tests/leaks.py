"""Looking for secrets wherever a run leaves text: files, streams and the objects written."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from .support import list_keys


def spellings(secret: str) -> list[str]:
    """Ways a careless renderer could write a secret: escaped, encoded, trimmed, padded."""
    out = []
    for core in (secret, secret.strip(), " " + secret.strip() + "\t", secret + "\r\n"):
        out += [
            core,
            repr(core),
            json.dumps(core),
            json.dumps(json.dumps(core)),
            str(core.encode()),
            quote(core, safe=""),
            quote(core, safe="").lower(),
            quote_plus(core),
            quote(quote(core, safe=""), safe=""),
            json.dumps(core).replace("/", "\\/"),
        ]
    return out


def files_holding(root: Path, secret: str, folders: Iterable[str] = ("target", "logs")) -> set[str]:
    """Files under ``root``'s folders (relative paths) holding any spelling of ``secret``."""
    needles = [s.encode() for s in spellings(secret)]
    found = set()
    for folder in folders:
        for path in (root / folder).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if any(needle in data for needle in needles):
                    found.add(str(path.relative_to(root)))
    return found


def text_holds(text: str, secret: str) -> bool:
    return any(s in text for s in spellings(secret))


def objects_holding(s3: Any, buckets: Iterable[str], secret: str) -> list[str]:
    """``bucket/key`` of every object whose key, body or metadata holds ``secret``."""
    found = []
    for bucket in buckets:
        for key in list_keys(s3, bucket):
            response = s3.get_object(Bucket=bucket, Key=key)
            text = " ".join(
                [key, json.dumps(response["Metadata"]), response["Body"].read().decode("latin-1")]
            )
            if text_holds(text, secret):
                found.append(f"{bucket}/{key}")
    return found
