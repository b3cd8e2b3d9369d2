"""The one translator: every failed S3, STS or Glue request into one of our errors.

Every failed request goes through ``translate``: the error code of an answer picks
a row of the error table (error_table.py: our exception class and a hint that says
what to do), and errors without an answer (timeouts, refused connections, missing
credentials, an answer that is not S3's) are told apart by type. The result is one
line that names the request, keeps the server's own message, and carries the
original error as ``__cause__`` when raised with ``from``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSOError,
    TokenRetrievalError,
)
from botocore.parsers import ResponseParserError

from ..errors import (
    AccessDenied,
    BucketNotFound,
    EndpointUnreachable,
    InvalidCredentials,
    ObjectNotFound,
    PreconditionFailed,
    RequestTimeout,
    S3ExportError,
    TransferError,
)
from .deadlines import EndpointSilent, facts
from .error_table import (
    CHECK_CREDENTIALS,
    ERROR_CODES,
    GLUE_PERMISSIONS,
    S3_PERMISSIONS,
    SERVER_FAULT,
    AssumeRole,
    GlueRequest,
    Meaning,
    Request,
)


def _service(request: Request) -> str:
    return {AssumeRole: "STS", GlueRequest: "Glue"}.get(type(request), "S3")


# What a boto3 call raises of its own accord (ResponseParserError is not a BotoCoreError).
BOTOCORE_ERRORS = (ClientError, BotoCoreError, ResponseParserError)


def translate(err: BaseException, request: Request) -> S3ExportError:
    """The error of ours that says what ``err`` means for ``request``, on one line."""
    if isinstance(err, S3ExportError):
        return err
    if isinstance(err, ClientError):
        return _answered(err, request)
    return _unanswered(err, request)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _answered(err: ClientError, request: Request) -> S3ExportError:
    """An error the server answered with: its code picks the row of the table."""
    error = err.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = _one_line(str(error.get("Message", "")).rstrip(".")) or code
    meaning = ERROR_CODES.get(code)
    if meaning is None:
        retryable = status is not None and int(status) >= 500
        meaning = SERVER_FAULT if retryable else Meaning(TransferError)
    if isinstance(request, AssumeRole):
        return _role_answer(meaning, code, message, request)
    if isinstance(request, GlueRequest):
        return _glue_answer(meaning, code, message, request)
    cls = meaning.error
    if code == "404" and request.what.startswith("list"):
        cls = BucketNotFound  # a listing's 404 without a body: the bucket is missing
    if cls is BucketNotFound:
        return BucketNotFound(
            f"bucket '{request.bucket}' does not exist ({request.what}). Create it or fix 'bucket'",
            code=code,
        )
    if cls is InvalidCredentials:
        return InvalidCredentials(
            f"S3 rejected the credentials {request.place}: {meaning.hint} ({code}: {message}). "
            + CHECK_CREDENTIALS,
            code=code,
        )
    if cls is AccessDenied:
        return AccessDenied(
            f"access denied {request.place}: {message}. The credentials in use need "
            + S3_PERMISSIONS,
            code=code,
        )
    if cls is PreconditionFailed:
        return PreconditionFailed(
            f"S3 refused to {request.what} in s3://{request.bucket}: {meaning.hint} ({code})",
            code=code,
        )
    if cls is ObjectNotFound:
        hint = f". {meaning.hint}" if meaning.hint else ""
        return ObjectNotFound(
            f"no object to {request.what} in s3://{request.bucket} ({code}){hint}", code=code
        )
    attempts = err.response.get("ResponseMetadata", {}).get("RetryAttempts")
    gave_up = f" after {int(attempts) + 1} attempts" if meaning.retryable and attempts else ""
    hint = f". {meaning.hint}" if meaning.hint else ""
    return cls(
        f"S3 error {request.place}{gave_up}: {code} (HTTP {status}): {message}{hint}",
        code=code,
        retryable=meaning.retryable,
    )


def _glue_answer(meaning: Meaning, code: str, message: str, request: GlueRequest) -> TransferError:
    if meaning.error is AccessDenied:
        return AccessDenied(
            f"access denied {request.place}: {message}. The credentials in use need "
            + GLUE_PERMISSIONS,
            code=code,
        )
    if meaning.error is InvalidCredentials:
        return InvalidCredentials(
            f"Glue rejected the credentials {request.place}: {meaning.hint} ({code}: "
            f"{message}). " + CHECK_CREDENTIALS,
            code=code,
        )
    hint = f". {meaning.hint}" if meaning.hint else ""
    return TransferError(
        f"Glue error {request.place}: {code}: {message}{hint}",
        code=code,
        retryable=meaning.retryable,
    )


def _role_answer(meaning: Meaning, code: str, message: str, request: AssumeRole) -> TransferError:
    if meaning.error is AccessDenied:
        return AccessDenied(
            f"{request.place}: {message}. The role's trust policy must let the base credentials "
            f"({request.base}) call sts:AssumeRole, their policy must allow it, and external_id "
            "must match what the role requires",
            code=code,
        )
    if meaning.error is InvalidCredentials:
        return InvalidCredentials(
            f"{request.place}: STS rejected the base credentials ({code}: {message}). "
            f"Check {request.base}",
            code=code,
        )
    hint = f". {meaning.hint}" if meaning.hint else ""
    return TransferError(
        f"{request.place}: {code}: {message}{hint}", code=code, retryable=meaning.retryable
    )


def _seconds(value: Any) -> str:
    return f"{float(value):g} s"


def _attempts(err: BaseException) -> str:
    """``, 2 attempts in 61 s`` from what the deadline hooks noted, or nothing."""
    noted = facts(err)
    if "attempts" not in noted:
        return ""
    n = int(noted["attempts"])
    return f", {n} attempt{'s' if n != 1 else ''} in {float(noted['seconds']):.0f} s"


def _frame(request: Request, head: str) -> str:
    """``head`` placed in the request: after the role, or before the S3 call it stopped."""
    if isinstance(request, AssumeRole):
        return f"{request.place}: {head}"
    return f"{head} {request.place}"


def _unanswered(err: BaseException, request: Request) -> S3ExportError:
    """An error without an answer from the server, told apart by its type."""
    service = _service(request)
    noted = facts(err)
    if isinstance(err, EndpointSilent):
        return RequestTimeout(
            _frame(request, f"{service} request not sent")
            + f": the endpoint gave no answer to {noted['operation']} "
            f"{float(noted['seconds']):.0f} s ago. Check endpoint_url and that the server is up",
            retryable=True,
        )
    if isinstance(err, ReadTimeoutError):
        read = f" ({_seconds(noted['read_timeout'])})" if "read_timeout" in noted else ""
        return RequestTimeout(
            _frame(request, f"{service} did not answer in time")
            + f": no answer within read_timeout{read}{_attempts(err)}. Check that endpoint_url "
            f"points at a working {service} server and the network, or raise read_timeout "
            "and total_timeout",
            retryable=True,
        )
    if isinstance(err, ConnectTimeoutError):
        limit = f" ({_seconds(noted['connect_timeout'])})" if "connect_timeout" in noted else ""
        return EndpointUnreachable(
            _frame(request, f"cannot reach the {service} endpoint")
            + f": no connection within connect_timeout{limit}{_attempts(err)}. "
            "Check endpoint_url/region and the network",
            retryable=True,
        )
    if isinstance(err, EndpointConnectionError):
        return EndpointUnreachable(
            _frame(request, f"cannot reach the {service} endpoint")
            + f": {_one_line(str(err))}. Check endpoint_url/region and the network",
            retryable=True,
        )
    if isinstance(err, (ConnectionClosedError, ResponseStreamingError, IncompleteReadError)):
        return TransferError(
            _frame(request, f"the connection to {service} kept breaking")
            + f" (after retries): {_one_line(str(err))}. Check the endpoint and the network",
            retryable=True,
        )
    if isinstance(err, _CREDENTIAL_ERRORS):
        detail = "" if isinstance(err, NoCredentialsError) else f" ({_one_line(str(err))})"
        head = (
            "no base credentials found to call STS with"
            if isinstance(request, AssumeRole)
            else "no usable AWS credentials found"
        )
        return InvalidCredentials(
            _frame(request, head) + f"{detail}. Configure access_key_id and secret_access_key, "
            "a profile_name, or the standard AWS environment variables",
            code="NoCredentials",
        )
    if isinstance(err, ResponseParserError):
        server = (
            "a server that also answers STS (role_arn sends AssumeRole there)"
            if isinstance(request, AssumeRole)
            else "an S3 server"
        )
        return TransferError(
            _frame(request, f"the endpoint's answer is not an {service} answer")
            + f": it could not be parsed ({_one_line(str(err), 120)}). Check that endpoint_url "
            f"points at {server}"
        )
    if "Invalid header" in str(err):
        # http.client's refusal quotes the header, and a header may hold a credential.
        return TransferError(
            _frame(request, f"{service} request not sent")
            + ": a request header would hold a line break or another character HTTP forbids. "
            "Check the credentials (a key read from a file may end in a newline), metadata "
            "and tags"
        )
    kind = "" if isinstance(err, BotoCoreError) else f"{type(err).__name__}: "
    return TransferError(
        _frame(request, f"{service} request failed") + f": {kind}{_one_line(str(err))}"
    )


_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)
