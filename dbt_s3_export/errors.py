"""The package's exceptions.

Every error a user can meet derives from ``S3ExportError``. Messages say which
export, which option or object, what was wrong and what to do, and never carry a
credential: they are shown in dbt's output and written to ``logs/dbt.log``.
"""

from __future__ import annotations


class S3ExportError(Exception):
    """Base class of everything this package raises on purpose."""


def brief(e: BaseException) -> str:
    """An error as one sentence-like fragment, without a trailing period."""
    text = str(e) if isinstance(e, S3ExportError) else f"{type(e).__name__}: {e}"
    return " ".join(text.split()).rstrip(".")


class ConfigError(S3ExportError):
    """The export configuration is invalid; raised before any data is read or sent."""

    def __init__(self, context: str, option: str | None, problem: str, fix: str = "") -> None:
        self.context = context
        self.option = option
        self.problem = problem
        self.fix = fix
        # ``context`` is the place in the configuration ("s3_export[1]", the profile), if any.
        subject = [part for part in (context, f"option '{option}'" if option else "") if part]
        text = ": ".join([*subject, problem])
        if fix:
            text += f". {fix}"
        super().__init__(text)


class SourceError(S3ExportError):
    """The relation could not be read (missing, or a column the config names is absent)."""


class PartitionError(S3ExportError):
    """A partition value cannot be turned into a valid object key."""


class TooManyPartitions(PartitionError):
    """The model has more partitions than ``max_partitions`` allows."""


class LocalSpaceError(SourceError):
    """Local temporary space (TMPDIR, or DuckDB's temp_directory) ran out during the export."""


class TransferError(S3ExportError):
    """S3 refused or failed a request; the original botocore error is the ``__cause__``."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)


class BucketNotFound(TransferError):
    pass


class AccessDenied(TransferError):
    pass


class InvalidCredentials(TransferError):
    pass


class EndpointUnreachable(TransferError):
    pass


class RequestTimeout(EndpointUnreachable):
    """The endpoint took the connection but did not answer within the timeouts."""


class ExportFailed(S3ExportError):
    """An export failed after it started writing.

    Before the commit point this run's files are removed and the previous export
    is unchanged; after it, the new export is in place and only the clean-up failed.
    """


class ObjectNotFound(TransferError):
    """The object (or the bucket) asked for is not there."""


class PreconditionFailed(TransferError):
    """A conditional write or delete lost: the object changed since it was read.

    Raised for S3's ``PreconditionFailed`` (412) and ``ConditionalRequestConflict``
    (409) answers to ``If-Match`` / ``If-None-Match`` requests.
    """


class ColumnError(S3ExportError):
    """A column's type or values cannot be written exactly in the chosen format.

    Raised before anything is published: by a check before the upload where the
    problem shows in the types or in a cheap look at the values, or mid-stream,
    which aborts the export and leaves the previous one as it was. The message
    names the column, its type and the fix.
    """
