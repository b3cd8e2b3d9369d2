"""What one export did: the result every export path (files, tables) returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from .encoding.files import WrittenFile
from .progress import human_bytes, plural


@dataclass
class ExportResult:
    model: str
    destination: str
    file_format: str
    generation: str
    files: list[WrittenFile] = field(default_factory=list)
    seconds: float = 0.0
    removed: int = 0
    skipped: str | None = None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def summary(self) -> str:
        if self.skipped:
            return f"s3_export: {self.model} -> {self.destination}: skipped ({self.skipped})"
        return (
            f"s3_export: {self.model} -> {self.destination} ({self.file_format}): "
            f"{plural(self.rows, 'row')}, {plural(len(self.files), 'file')}, "
            f"{human_bytes(self.bytes)}, {self.seconds:.2f}s"
        )
