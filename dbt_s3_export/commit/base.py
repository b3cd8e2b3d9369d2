"""What the commits of folders and of single objects share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ExportFailed
from ..options.config import ExportConfig
from .manifest import MANIFEST_VERSION
from .ownership import RunContext, new_generation

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


class BaseCommit:
    """What the commits of folders and of single objects share."""

    def __init__(self, client: S3Client, cfg: ExportConfig, ctx: RunContext) -> None:
        self.client = client
        self.cfg = cfg
        self.ctx = ctx
        self.generation = new_generation()
        self.export_id = ctx.export_id(cfg)
        self.mode: str = cfg.mode
        # Whether the run writes its files only where nothing is (single objects).
        self.if_absent = False

    def _exists(self, key: str) -> str:
        """Something is at key: the skip reason (skip_if_exists), or the error_if_exists error."""
        if self.cfg.mode == "skip_if_exists":
            return f"s3://{self.cfg.bucket}/{key} already exists"
        raise ExportFailed(
            f"mode is error_if_exists and s3://{self.cfg.bucket}/{key} already exists. "
            f"Delete what is at {self.cfg.destination}, or use mode replace or skip_if_exists"
        )

    def _manifest(self, listed: Sequence[dict[str, Any]], fields: dict[str, Any]) -> dict[str, Any]:
        """A manifest listing ``listed``, with the ``fields`` the caller gives."""
        return {
            "format_version": MANIFEST_VERSION,
            "export_id": self.export_id,
            "generation": self.generation,
            **fields,
            "mode": self.mode,
            "rows": sum(f.get("rows") or 0 for f in listed),
            "bytes": sum(f.get("bytes") or 0 for f in listed),
            "files": list(listed),
        }
