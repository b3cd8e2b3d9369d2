"""Timestamps in S3's answers, read without dateutil where their form is known.

botocore reads every timestamp of an answer (each listed object's LastModified,
each GetObject's and HeadObject's Last-Modified) with dateutil's general parser,
about 40 microseconds apiece: a listing of a thousand files spent 40 ms on its
dates alone. S3 writes them in two forms, ISO 8601 in XML bodies and the HTTP
date in headers, both read here by the standard library in a microsecond or
two. Anything else (epoch numbers, forms without a zone) goes to botocore's own
parser, so every value is the instant botocore would give.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Any

from botocore.utils import parse_timestamp as botocore_parse_timestamp


def parse_timestamp(value: Any) -> dt.datetime:
    """``value`` from an S3 answer as a datetime: the instant botocore reads in it."""
    if isinstance(value, str):
        try:
            parsed = (
                dt.datetime.fromisoformat(value)
                if value[:1].isdigit()
                else email.utils.parsedate_to_datetime(value)
            )
        except (ValueError, TypeError, IndexError):
            parsed = None
        if parsed is not None and parsed.utcoffset() is not None:
            return parsed
    result: dt.datetime = botocore_parse_timestamp(value)
    return result


def read_timestamps_quickly(session: Any) -> None:
    """Clients made from ``session`` (a boto3 session) from now on use ``parse_timestamp``."""
    core = session._session  # boto3's botocore session: where the parser defaults live
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
