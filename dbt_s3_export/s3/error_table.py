"""What S3, STS and Glue errors mean, in one table (translate.py applies it).

Every failed request, S3 or STS, goes through ``translate``: the error code of
an answer picks a row of ``ERROR_CODES`` (our exception class and a hint that
says what to do), and errors without an answer (timeouts, refused connections,
missing credentials, an answer that is not S3's) are told apart by type. The
result is one line that names the request, keeps the server's own message, and
carries the original error as ``__cause__`` when raised with ``from``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import (
    AccessDenied,
    BucketNotFound,
    InvalidCredentials,
    ObjectNotFound,
    PreconditionFailed,
    TransferError,
)

S3_PERMISSIONS = (
    "s3:PutObject, s3:GetObject, s3:DeleteObject, s3:AbortMultipartUpload, s3:ListBucket "
    "and s3:ListBucketMultipartUploads"
)
CHECK_CREDENTIALS = (
    "Check access_key_id/secret_access_key/session_token, the profile or the role the export uses"
)
_KEPT_FAILING = "S3 or the endpoint kept failing; try again later or check its status"
_WRONG_REGION = "The bucket is in another region: set 'region' to the bucket's region"


@dataclass(frozen=True)
class Meaning:
    """What an error code means to us: the exception to raise and what to do about it."""

    error: type[TransferError]
    hint: str = ""
    retryable: bool = False


_CREDENTIALS_UNKNOWN = Meaning(InvalidCredentials, "the access key id is unknown")
_TOKEN_EXPIRED = Meaning(
    InvalidCredentials, "the session token has expired; get fresh temporary credentials"
)
_DENIED = Meaning(AccessDenied)
SERVER_FAULT = Meaning(TransferError, _KEPT_FAILING, retryable=True)
# A conditional write (If-Match / If-None-Match) lost: 412, or 409 for a race.
_CHANGED = Meaning(PreconditionFailed, "the object changed since it was read")

# S3 and STS error codes -> meaning. Codes not listed are TransferErrors that show
# the server's message; HTTP status codes stand in for the code of a HEAD answer.
ERROR_CODES: dict[str, Meaning] = {
    "NoSuchBucket": Meaning(BucketNotFound),
    "NoSuchKey": Meaning(ObjectNotFound),
    "NotFound": Meaning(ObjectNotFound),
    "404": Meaning(ObjectNotFound),
    "NoSuchUpload": Meaning(
        ObjectNotFound,
        "The multipart upload is gone (aborted by another run or a lifecycle rule); "
        "run the export again",
    ),
    "PreconditionFailed": _CHANGED,
    "ConditionalRequestConflict": _CHANGED,
    "412": _CHANGED,
    "AccessDenied": _DENIED,
    "AccessDeniedException": _DENIED,
    "AllAccessDisabled": _DENIED,
    "403": _DENIED,
    "InvalidAccessKeyId": _CREDENTIALS_UNKNOWN,
    "InvalidClientTokenId": _CREDENTIALS_UNKNOWN,
    "SignatureDoesNotMatch": Meaning(
        InvalidCredentials, "the secret access key does not belong to the access key id"
    ),
    "ExpiredToken": _TOKEN_EXPIRED,
    "ExpiredTokenException": _TOKEN_EXPIRED,
    "TokenRefreshRequired": _TOKEN_EXPIRED,
    "InvalidToken": Meaning(
        InvalidCredentials,
        "the session token is malformed or does not belong to the access key id",
    ),
    "RequestTimeTooSkewed": Meaning(
        TransferError,
        "This machine's clock is more than 15 minutes off the server's: set it right (NTP)",
    ),
    "PermanentRedirect": Meaning(TransferError, _WRONG_REGION),
    "AuthorizationHeaderMalformed": Meaning(TransferError, _WRONG_REGION),
    "IllegalLocationConstraintException": Meaning(TransferError, _WRONG_REGION),
    "InvalidBucketName": Meaning(
        TransferError, "The endpoint does not take this bucket name: fix 'bucket'"
    ),
    "KeyTooLongError": Meaning(
        TransferError, "Object keys are at most 1,024 bytes: shorten 'key' or filename_template"
    ),
    "MetadataTooLarge": Meaning(
        TransferError, "User metadata is at most 2 KB per object: shorten 'metadata'"
    ),
    "InvalidTag": Meaning(TransferError, "Fix 'tags' (see docs/safety.md for S3's tag rules)"),
    "InvalidStorageClass": Meaning(
        TransferError, "The endpoint does not offer this storage class: change 'storage_class'"
    ),
    "KMS.NotFoundException": Meaning(
        TransferError, "Check 'sse_kms_key_id': the KMS key is not found in the bucket's region"
    ),
    "KMS.DisabledException": Meaning(
        TransferError, "The KMS key in 'sse_kms_key_id' is disabled: enable it or use another"
    ),
    "EntityTooLarge": Meaning(
        TransferError, "One object is larger than the endpoint takes: set max_rows_per_file"
    ),
    "NotImplemented": Meaning(
        TransferError,
        "The endpoint does not implement this request; drop the option that needs it "
        "(tags, sse, storage_class) or use another S3-compatible server",
    ),
    "BadDigest": Meaning(TransferError, "The bytes arrived damaged; run again", retryable=True),
    "XAmzContentSHA256Mismatch": Meaning(
        TransferError, "The bytes arrived damaged; run again", retryable=True
    ),
    "SlowDown": Meaning(
        TransferError,
        "S3 asked to slow down and kept asking: lower max_concurrency, or try again later",
        retryable=True,
    ),
    "Throttling": Meaning(TransferError, "The endpoint kept throttling: try again later", True),
    "RegionDisabledException": Meaning(
        TransferError, "STS is not enabled in this region for the account: change 'region'"
    ),
    "InternalError": SERVER_FAULT,
    "ServiceUnavailable": SERVER_FAULT,
    "500": SERVER_FAULT,
    "502": SERVER_FAULT,
    "503": SERVER_FAULT,
    "504": SERVER_FAULT,
}


@dataclass(frozen=True)
class S3Request:
    """Which S3 request failed: the bucket, and what it was for, in words."""

    bucket: str
    what: str

    @property
    def place(self) -> str:
        return f"while trying to {self.what} in s3://{self.bucket}"


@dataclass(frozen=True)
class AssumeRole:
    """An AssumeRole call, and where its base credentials come from (in words safe to show)."""

    role_arn: str
    base: str

    @property
    def place(self) -> str:
        return f"cannot assume role {self.role_arn}"


@dataclass(frozen=True)
class GlueRequest:
    """A Glue catalog request (registering an export), and what it was for, in words."""

    what: str

    @property
    def place(self) -> str:
        return f"while trying to {self.what} in the Glue catalog"


GLUE_PERMISSIONS = (
    "glue:GetDatabase, glue:CreateDatabase, glue:GetTable, glue:CreateTable, glue:UpdateTable, "
    "glue:GetPartitions, glue:BatchCreatePartition and glue:BatchDeletePartition"
)

Request = S3Request | AssumeRole | GlueRequest
