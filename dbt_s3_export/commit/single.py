"""A single-object export: ownership in the object's metadata, only-if-absent writes."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..options.config import ExportConfig
from ..s3.objects import (
    StoredObject,
    abort_upload,
    head_object,
    list_uploads,
    put_object,
    together,
)
from .base import BaseCommit
from .ownership import (
    OWNER_METADATA,
    RunContext,
    ancestors,
    claims_at,
    conflict,
    nearest_claim,
    settled,
)
from .store import encode, object_args, store_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


class ObjectCommit(BaseCommit):
    """A single-object export: ownership and the only-if-absent condition."""

    def __init__(self, client: S3Client, cfg: ExportConfig, ctx: RunContext) -> None:
        super().__init__(client, cfg, ctx)
        self._manifest_body: dict[str, Any] | None = None
        self._uploads: list[tuple[str, str]] | Exception | None = None

    def _left_uploads(self) -> list[tuple[str, str]]:
        """(key, upload id) of the multipart uploads at the key (killed runs leave them)."""
        found = list_uploads(self.client, self.cfg.bucket, self.cfg.key)
        return [(key, upload_id) for key, upload_id in found if key == self.cfg.key]

    @property
    def folder(self) -> str:
        return self.cfg.key.rsplit("/", 1)[0] + "/" if "/" in self.cfg.key else ""

    def begin(self) -> str | None:
        store = store_for(self.client, self.cfg, self.folder)
        # The object's own folder counts too: a folder export owns everything under it.
        # The checks and the look at the object are sent together, judged in this order.
        folders = ancestors(self.cfg.key)
        # The uploads killed runs left at the key are listed with them, for finish().
        head = functools.partial(head_object, self.client, self.cfg.bucket, self.cfg.key)
        outcomes = together(*claims_at(store, folders), head, self._left_uploads)
        self._uploads = outcomes[-1]
        claim = nearest_claim(folders, outcomes[:-2])
        if claim is not None:
            raise conflict(self.cfg, self.export_id, *claim, "around")
        existing: StoredObject | None = settled(outcomes[-2])
        if existing is not None:
            owner = unquote(existing.metadata.get(OWNER_METADATA, ""))
            if owner and owner not in (self.export_id, self.cfg.take_over_from):
                raise conflict(self.cfg, self.export_id, self.cfg.key, f"export '{owner}'", "same")
            if self.cfg.mode in ("error_if_exists", "skip_if_exists"):
                return self._exists(self.cfg.key)
        # Where nothing is, write only if nothing appears meanwhile (another export's file).
        self.if_absent = existing is None and store.conditional
        return None

    def publish(self, files: Sequence[dict[str, Any]], manifest: dict[str, Any]) -> None:
        """The object itself was the commit; its manifest, if asked for, follows it."""
        if self.cfg.manifest:
            self._manifest_body = self._manifest(files, manifest)

    def finish(self) -> int:
        """Abort uploads left at the key by killed runs; write the manifest if asked."""
        # Listed when the run began; listed now if that failed.
        left = self._uploads if isinstance(self._uploads, list) else self._left_uploads()
        for key, upload_id in left:
            abort_upload(self.client, self.cfg.bucket, key, upload_id)
        if self._manifest_body is not None:
            put_object(
                self.client,
                self.cfg.bucket,
                self.cfg.key + ".manifest.json",
                encode(self._manifest_body),
                extra=object_args(self.cfg, {}),
            )
        return 0

    def abort(self, written: Iterable[str], *, in_doubt: bool) -> None:
        """Nothing to undo: an object that did not land was never visible."""

    def close(self) -> None:
        pass
