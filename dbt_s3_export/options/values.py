"""Reading one option's value by its entry in the option table. No I/O happens here.

``Reader.read`` takes an option's type, choices, bounds and secrecy from its
entry (``table.py``) and then runs the option's own value check, if it has
one (``VALUE_CHECKS``: a bucket name, a key's shape, a delimiter, a filter).
How options fit together is ``options/rules.py``'s concern, not this module's.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from . import table as spec
from .attributes import Problem, content_type_problem, metadata_problem, tags_problem
from .table import Option
from .where import FilterError, filter_sql

MAX_KEY_BYTES = 1024
# Placeholders of filename_template. run_id and part are required: together they
# keep names unique within a run and across runs, and run_id tells which run
# wrote a file, which is how the export recognises its own files.
TEMPLATE_FIELDS = ("model", "run_id", "part", "invocation_id", "date")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_DELIMITER_ALIASES = {"\\t": "\t", "tab": "\t", "\\x1f": "\x1f"}
# What to do when a required option is missing, when "add it" is not enough.
_REQUIRED_FIX = {"file_format": f"Use one of {', '.join(spec.BY_NAME['file_format'].choices)}"}


class Invalid(Exception):
    """A value's problem and its fix; the reader adds the place and the option's name."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


class Reader:
    """Reads the options of one mapping (an export, a catalog), naming the place in errors."""

    def __init__(self, raw: Mapping[str, Any], context: str) -> None:
        self.raw = raw
        self.context = context

    def fail(self, option: str, problem: str, fix: str = "") -> ConfigError:
        return ConfigError(self.context, option, problem, fix)

    def given(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def read(self, name: str, entry: Option | None = None) -> Any:
        """The value of ``name``, typed and checked by its entry; None when it is unset."""
        entry = entry or spec.BY_NAME[name]
        value = self.raw.get(name)
        if value is None:
            if entry.required:
                fix = _REQUIRED_FIX.get(name, "Add it to the s3_export meta")
                raise self.fail(name, "is required but missing", fix)
            return None
        try:
            typed = _TYPES[entry.type](value, entry)
            check = VALUE_CHECKS.get(name)
            return check(typed) if check else typed
        except Invalid as e:
            raise self.fail(name, e.problem, e.fix) from None


# -- types ------------------------------------------------------------------------------------


def _string(value: Any, entry: Option) -> str:
    if isinstance(value, bool) and "true" in entry.choices:
        value = str(value).lower()  # conditional_writes: true, as YAML reads it
    if not isinstance(value, str):
        raise Invalid(
            f"must be a string, got {type(value).__name__} {_shown(value, entry)}",
            "Quote it in YAML (unquoted digits are a number there, not a string), "
            "or better, read it with env_var('DBT_ENV_SECRET_...') in the profile"
            if entry.secret
            else "",
        )
    if not value and entry.name != "key":  # an empty key is the bucket root (option_rules)
        raise Invalid("must not be empty")
    if entry.secret:
        return _credential(value)
    if entry.choices:
        return _choice(value, entry)
    return value


def _choice(value: str, entry: Option) -> str:
    normal = {"lower": value.lower(), "upper": value.upper(), "exact": value}[entry.case]
    if normal not in entry.choices:
        raise Invalid(f"must be one of {', '.join(entry.choices)}, got {value!r}")
    return normal


def _credential(value: str) -> str:
    """A key, token or external id; surrounding whitespace (a file's newline) is dropped."""
    trimmed = value.strip()
    if not trimmed:
        raise Invalid("is only whitespace", "Check where the value is read from")
    if any(ch.isspace() or not ch.isprintable() for ch in trimmed):
        raise Invalid(
            "has whitespace or a control character inside (the value is not shown); "
            "AWS keys, tokens and external ids never do",
            "Check where the value is read from",
        )
    return trimmed


def _shown(value: Any, entry: Option) -> str:
    return "***" if entry.secret else repr(value)


def _boolean(value: Any, entry: Option) -> bool:
    if not isinstance(value, bool):
        raise Invalid(
            f"must be true or false, got {type(value).__name__} {value!r}",
            "Write it unquoted: true or false",
        )
    return value


def _flag(value: Any, entry: Option) -> bool:
    """A boolean that may arrive as text, as Jinja-rendered YAML config does."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return _boolean(value, entry)


def _integer(value: Any, entry: Option) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"must be a whole number, got {type(value).__name__} {value!r}")
    low, high = entry.minimum, entry.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        upper = f" and at most {int(high)}" if high is not None else ""
        raise Invalid(f"must be at least {int(low or 0)}{upper}, got {value}")
    return value


def _number(value: Any, entry: Option) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise Invalid(f"must be a number of seconds, got {type(value).__name__} {value!r}")
    low, high = entry.minimum or 0.0, entry.maximum or float("inf")
    if not low <= value <= high:
        raise Invalid(f"must be from {low:g} to {high:g} seconds, got {value!r}")
    return float(value)


def _string_list(value: Any, entry: Option) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise Invalid(
            f"must be a list of column names, got {type(value).__name__} {value!r}",
            f"Write it as a list, e.g. [{value!r}]" if isinstance(value, str) else "",
        )
    for item in value:
        if not isinstance(item, str) or not item:
            raise Invalid(f"must hold non-empty column names, got {item!r}")
    return tuple(value)


def _string_map(value: Any, entry: Option) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise Invalid(f"must be a mapping of names to text, got {type(value).__name__} {value!r}")
    pairs = []
    for name, item in value.items():
        if not isinstance(name, str) or not name or not isinstance(item, (str, int, float)):
            raise Invalid(f"entry {name!r}: {item!r} must be a name and a text value")
        pairs.append((name, str(item)))
    return tuple(sorted(pairs))


_TYPES: dict[str, Callable[[Any, Option], Any]] = {
    "string": _string,
    "boolean": _boolean,
    "flag": _flag,
    "integer": _integer,
    "number": _number,
    "string_list": _string_list,
    "mapping": _string_map,
}


# -- the checks of single options -------------------------------------------------------------


def _bucket(bucket: str) -> str:
    if bucket.startswith("s3://"):
        raise Invalid(
            f"must be a bare bucket name, got {bucket!r}",
            "Drop the s3:// and put the path in 'key'",
        )
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise Invalid(
            f"{bucket!r} is not a valid S3 bucket name",
            "Bucket names are 3 to 63 characters: lowercase letters, digits, dots and hyphens",
        )
    return bucket


def _key(key: str) -> str:
    if key.startswith("s3://"):
        raise Invalid(
            f"must be a path inside the bucket, got {key!r}",
            "Put the bucket name in 'bucket' and the rest of the path in 'key'",
        )
    if key.startswith("/"):
        raise Invalid(f"must not start with '/', got {key!r}", "Drop the leading /")
    if "//" in key:
        raise Invalid(f"must not contain empty path segments, got {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES - 100:
        raise Invalid(
            f"is {len(key.encode())} bytes; S3 keys are limited to {MAX_KEY_BYTES}",
            "Use a shorter key",
        )
    return key


def _partition_cols(cols: tuple[str, ...]) -> tuple[str, ...]:
    for i, col in enumerate(cols):
        if col in cols[:i]:
            raise Invalid(f"names column {col!r} twice", "List each partition column once")
    return cols


# Numbers, dates, times and booleans are written without quotes, so a delimiter
# that can occur in them would split values: digits, letters (true, nan, inf, 1e+20),
# the signs, points and colons of numbers and times. A backslash is Spark's escape.
_AMBIGUOUS_DELIMITERS = frozenset("+-.:")


def _delimiter(text: str) -> str:
    """One ASCII character that no unquoted value can contain."""
    # Jinja and YAML single-quoted strings keep a backslash escape as two characters.
    delimiter = _DELIMITER_ALIASES.get(text, text)
    if len(delimiter) != 1 or delimiter in '\r\n"' or not delimiter.isascii():
        raise Invalid(
            f"must be one ASCII character other than a quote or line break, got {delimiter!r}",
            'For tabs write "\\t"',
        )
    if delimiter == "\\":
        raise Invalid(
            "'\\' is the escape character of Spark's CSV reader (and others'), which would "
            "not split on it",
            "Use a comma, a semicolon, a pipe or a tab (\\t)",
        )
    if delimiter.isalnum() or delimiter in _AMBIGUOUS_DELIMITERS:
        raise Invalid(
            f"{delimiter!r} can occur in numbers, dates, times or booleans, which are written "
            "without quotes, so readers could not tell values apart",
            "Use a comma, a semicolon, a pipe or a tab (\\t), or another character that is "
            "not a letter, a digit, a sign, a point, a colon or a backslash",
        )
    return delimiter


def _where(where: str) -> str:
    try:
        filter_sql(where)
    except FilterError as e:
        raise Invalid(
            f"{where!r} {e}",
            'Give one condition over the model\'s columns, e.g. "event_date >= current_date - 7"',
        ) from None
    return where


def _endpoint_url(url: str) -> str:
    if "@" in url:  # userinfo, even with an unescaped '/' in the password
        shown = f"{url.split('://', 1)[0]}://***@{url.rsplit('@', 1)[1]}"
        raise Invalid(
            f"must not hold credentials (user:password@), got {shown!r} (credentials hidden)",
            "Give them as access_key_id and secret_access_key in the profile's "
            "dbt_s3_export plugin config, read with env_var('DBT_ENV_SECRET_...')",
        )
    if not re.match(r"^https?://[^/\s]+", url):
        raise Invalid(
            f"must be an http:// or https:// URL, got {url!r}", "For example http://127.0.0.1:9000"
        )
    return url


def _export_id(value: str) -> str:
    if len(value) > 200 or not value.isprintable() or value != value.strip():
        raise Invalid(
            f"must be printable text of at most 200 characters without leading or "
            f"trailing spaces, got {value!r}",
            "For example 'orders_to_lake'",
        )
    return value


def _own_export_id(value: str) -> str:
    if value == "*":
        raise Invalid(
            "'*' is not an export id: take_over_from: '*' adopts a table that names no owner",
            "For example 'orders_to_lake'",
        )
    return _export_id(value)


def template_fields(template: str) -> set[str]:
    """The placeholders of a filename_template, refusing what str.format would misread."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise Invalid(
            f"{template!r} has an unmatched brace ({e})", "Write {{ and }} for literal braces"
        ) from None
    used = set()
    for _, name, format_spec, conversion in parsed:
        if name is None:
            continue
        if format_spec or conversion:
            raise Invalid(
                f"{template!r}: placeholder {{{name}}} has a format spec or conversion",
                "Write placeholders bare, like {part}",
            )
        used.add(name)
    return used


def _filename_template(template: str) -> str:
    used = template_fields(template)
    unknown = used - set(TEMPLATE_FIELDS)
    if unknown:
        raise Invalid(
            f"has unknown placeholder(s) {', '.join(sorted(unknown))} in {template!r}",
            f"Use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}",
        )
    missing = {"run_id", "part"} - used
    if missing:
        raise Invalid(
            f"{template!r} lacks {', '.join('{' + f + '}' for f in sorted(missing))}, so "
            "file names would not be unique per run",
            "Include both {run_id} and {part}",
        )
    if "/" in template or "\\" in template or template.startswith((".", "_")):
        raise Invalid(
            f"{template!r} must be a plain file name, not starting with '.' or '_' "
            "(readers skip such files)"
        )
    if any(not ch.isprintable() for ch in template):
        raise Invalid(f"{template!r} holds a control character (line break, tab...)", "Remove it")
    return template


def _checked(problem_of: Callable[[Any], Problem | None]) -> Callable[[Any], Any]:
    """A value check from an ``attributes`` function that returns a problem or None."""

    def check(value: Any) -> Any:
        problem = problem_of(value)
        if problem is not None:
            raise Invalid(*problem)
        return value

    return check


# The options whose values need more than their type, choices and bounds.
VALUE_CHECKS: dict[str, Callable[[Any], Any]] = {
    "bucket": _bucket,
    "key": _key,
    "partition_cols": _partition_cols,
    "csv_delimiter": _delimiter,
    "where": _where,
    "endpoint_url": _endpoint_url,
    "export_id": _own_export_id,
    "take_over_from": _export_id,
    "filename_template": _filename_template,
    "metadata": _checked(metadata_problem),
    "tags": _checked(tags_problem),
    "content_type": _checked(content_type_problem),
}


def is_folder(kw: Mapping[str, Any]) -> bool:
    """Whether the export's key names a folder of files rather than one object."""
    key: str = kw["key"]
    return bool(kw.get("partition_cols")) or key.endswith("/") or key == ""
