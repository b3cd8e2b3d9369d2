"""Group a stream of record batches by key columns in one pass, in bounded memory.

A partitioned export writes one file at a time, so it needs each partition's
rows together. Sorting the table costs several times more than reading it, and
scanning it once per partition costs a full read per partition; instead the rows
are read once, each batch is cut by key, and the pieces are kept per key. When
the pieces held pass a memory budget, the biggest key's pieces go to a temporary
Arrow IPC file of its own. At the end each key's rows come out together: what
went to its file first, then what stayed in memory, in the order they were read.

Memory stays near the budget however big the table; local disk holds what does
not fit (at most the table's size in Arrow form, and nothing when it fits).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..encoding.partitioning import key_boundaries, values_text
from ..errors import LocalSpaceError

# Arrow bytes of pieces held in memory before the biggest key's go to disk.
MEMORY_BUDGET = 40 * 1024 * 1024
# Batches are cut by key on this many threads (Arrow releases the GIL) while
# DuckDB scans; nothing else runs yet, so both cores go to reading.
CUT_THREADS = 2

Key = tuple[str | None, ...]


@dataclass
class _Group:
    pieces: list[pa.RecordBatch] = field(default_factory=list)
    nbytes: int = 0
    spill: pa.RecordBatchStreamWriter | None = None
    path: str | None = None


class GroupedBatches:
    """Batches of ``reader`` regrouped so that rows of equal ``keys`` values come together."""

    def __init__(
        self,
        reader: pa.RecordBatchReader,
        keys: Sequence[str],
        batch_size: int,
        memory_budget: int | None = None,
        *,
        expected_rows: int | None = None,
    ) -> None:
        self._reader = reader
        self._keys = list(keys)
        self._batch_size = batch_size
        self._budget = MEMORY_BUDGET if memory_budget is None else memory_budget
        self._groups: dict[Key, _Group] = {}
        self._held = 0
        # What was read so far, to estimate the spill space a full read needs.
        self._expected_rows = expected_rows
        self._rows_read = 0
        self._bytes_read = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.spill_dir: str | None = None  # where spill files went, if any (removed at the end)
        self.spilled_bytes = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._regrouped()
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise self._out_of_space() from e
        finally:
            self.close()

    def _regrouped(self) -> Iterator[pa.RecordBatch]:
        """Read everything, holding or spilling the pieces; then each key's rows in turn."""
        with ThreadPoolExecutor(CUT_THREADS, thread_name_prefix="s3-export-group") as pool:
            cuts: deque[Future[list[tuple[Key, pa.RecordBatch]]]] = deque()
            for batch in self._reader:
                self._rows_read += batch.num_rows
                self._bytes_read += batch.nbytes
                cuts.append(pool.submit(self._cut, batch))
                while len(cuts) > CUT_THREADS:
                    self._hold_all(cuts.popleft().result())
            while cuts:
                self._hold_all(cuts.popleft().result())
        # Keys held in memory go out joined into batches of about batch_size rows,
        # several small keys to a batch: a batch costs the same to pass on and cut
        # again whatever its rows, and a small model has many keys of a few rows.
        joined: list[pa.RecordBatch] = []
        rows = 0
        for key in sorted(self._groups, key=_sort_key):
            group = self._groups.pop(key)
            if group.spill is not None:
                if joined:
                    yield from self._coalesce(joined)
                    joined, rows = [], 0
                yield from self._release(group)
                continue
            pieces = self._taken(group)
            joined += pieces
            rows += sum(piece.num_rows for piece in pieces)
            if rows >= self._batch_size:
                yield from self._coalesce(joined)
                joined, rows = [], 0
        if joined:
            yield from self._coalesce(joined)

    def close(self) -> None:
        self._reader.close()
        for group in self._groups.values():
            if group.spill is not None:
                with contextlib.suppress(OSError):  # the file is dropped anyway
                    group.spill.close()
        self._groups.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _hold_all(self, pieces: list[tuple[Key, pa.RecordBatch]]) -> None:
        for key, piece in pieces:
            self._hold(key, piece)

    def _cut(self, batch: pa.RecordBatch) -> list[tuple[Key, pa.RecordBatch]]:
        """The batch's rows by key, each piece in buffers of its own, in read order."""
        if batch.num_rows == 0:
            return []
        # A stable sort keeps read order within a key.
        # Arrow sorts no dictionaries (DuckDB's ENUM): their values are sorted.
        keys = pa.RecordBatch.from_arrays(
            [_values(batch.column(k)) for k in self._keys], names=list(self._keys)
        )
        order = pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in self._keys])
        sorted_keys = keys.take(order)
        starts = [0, *key_boundaries(sorted_keys, self._keys)]
        ends = [*starts[1:], batch.num_rows]
        texts = [values_text(sorted_keys.column(c), starts) for c in self._keys]
        out = []
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            key = tuple(t[i] for t in texts)
            out.append((key, batch.take(order.slice(start, end - start))))
        return out

    def _hold(self, key: Key, piece: pa.RecordBatch) -> None:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        group.pieces.append(piece)
        group.nbytes += piece.nbytes
        self._held += piece.nbytes
        while self._held > self._budget:
            self._spill(max(self._groups.values(), key=lambda g: g.nbytes))

    def _out_of_space(self) -> LocalSpaceError:
        """Say where the space ran out, and how much a full read needs there."""
        folder = tempfile.gettempdir()  # where TMPDIR points
        needed = self.spilled_bytes + self._held
        if self._expected_rows and self._rows_read:
            per_row = self._bytes_read / self._rows_read
            needed = max(needed, int(per_row * self._expected_rows) - self._budget)
        written = f" after {self.spilled_bytes:,} bytes" if self.spilled_bytes else ""
        return LocalSpaceError(
            f"the temporary directory {folder} (TMPDIR) ran out of space{written} while setting "
            "aside the rows of a partitioned read, which needs about "
            f"{needed:,} bytes ({needed / 2**20:,.0f} MiB) there in all. Free that much space "
            "there, or set TMPDIR to a directory on a disk that has it"
        )

    def _spill(self, group: _Group) -> None:
        """Append a group's pieces to its temporary file, as batches of about batch_size."""
        if group.spill is None:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="dbt-s3-export-")
                self.spill_dir = self._tmp.name
            fd, group.path = tempfile.mkstemp(suffix=".arrows", dir=self._tmp.name)
            os.close(fd)
            group.spill = pa.ipc.new_stream(group.path, group.pieces[0].schema)
        for batch in self._coalesce(group.pieces):
            group.spill.write_batch(batch)
            self.spilled_bytes += batch.nbytes
        self._held -= group.nbytes
        group.pieces, group.nbytes = [], 0

    def _coalesce(self, pieces: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
        table = pa.Table.from_batches(pieces).combine_chunks()
        return list(table.to_batches(max_chunksize=self._batch_size))

    def _rebatch(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Small spilled batches joined into batches of batch_size rows (the last one shorter)."""
        held: list[pa.RecordBatch] = []
        rows = 0
        for batch in batches:
            held.append(batch)
            rows += batch.num_rows
            if rows >= self._batch_size:
                *full, rest = self._coalesce(held)
                yield from full
                if rest.num_rows == self._batch_size:
                    yield rest
                    held, rows = [], 0
                else:
                    held, rows = [rest], rest.num_rows
        if held:
            yield from self._coalesce(held)

    def _release(self, group: _Group) -> Iterator[pa.RecordBatch]:
        if group.spill is not None and group.path is not None:
            group.spill.close()
            group.spill = None
            with pa.OSFile(group.path) as file, pa.ipc.open_stream(file) as spilled:
                yield from self._rebatch(spilled)
            os.unlink(group.path)
        pieces = self._taken(group)
        if pieces:
            yield from self._coalesce(pieces)

    def _taken(self, group: _Group) -> list[pa.RecordBatch]:
        """The pieces a group holds in memory, no longer counted as held."""
        pieces, group.pieces = group.pieces, []
        self._held -= group.nbytes
        group.nbytes = 0
        return pieces


def _values(array: pa.Array) -> pa.Array:
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _sort_key(key: Key) -> tuple[tuple[bool, str], ...]:
    """Keys in text order, NULLs last: the order files are written in."""
    return tuple((text is None, text or "") for text in key)
