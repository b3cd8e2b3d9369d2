"""What the CSV and JSON writers share: values as text, from Arrow where it reads back
exactly and from DuckDB elsewhere, and encoding a few batches ahead on a small pool."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from decimal import Context, Decimal
from typing import ClassVar, Generic, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..pools import shared_pool
from .typemap import (
    DECIMAL_LIMIT,
    huge_int_error,
    iso_text_sql,
    non_finite_error,
    type_name,
)

# Parquet buffers rows up to this much Arrow memory before writing a row group,
# whatever row_group_size says, so wide rows do not blow the memory bound.


def temporal_text(
    name: str, typ: pa.DataType, array: pa.Array
) -> tuple[pa.Array | None, str | None]:
    """A batch's timestamps, dates or times as ISO text: (Arrow's text, or DuckDB's SQL).

    Whole-second timestamps and dates and times Arrow prints as DuckDB reads them
    back are rendered by Arrow ((text, None), or (None, None) where the column may
    go as it is); the others by DuckDB ((None, sql) for the column ``name``).
    """
    if pa.types.is_timestamp(typ):
        text = iso_whole_seconds(array)
        if text is not None:
            return text, None
        return None, iso_text_sql(name, "timestamptz" if typ.tz is not None else "timestamp")
    if arrow_renders(array):
        return None, None
    if pa.types.is_date(typ):
        return None, iso_text_sql(name, "date")
    return None, f"CAST({name} AS VARCHAR)"


def always_sql(col: str, typ: pa.DataType, *, csv: bool) -> str | None:
    """SQL for columns DuckDB renders in every batch: intervals, binaries, nested (CSV)."""
    if csv and pa.types.is_nested(typ):
        return f"CAST(to_json({col}) AS VARCHAR)"
    if pa.types.is_interval(typ):
        return f"CAST({col} AS VARCHAR)"
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return f"to_base64({col})"
    return None


# Dates of years 1 to 9999 (the ones Arrow renders, as ISO 8601) in days since 1970.
FIRST_DAY = -719_162


LAST_DAY = 2_932_896


DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def int_range(array: pa.Array) -> tuple[int, int] | None:
    """The smallest and largest value of a temporal array as integers; None when all null."""
    width = pa.int64() if array.type.bit_width == 64 else pa.int32()
    low, high = pc.min_max(array.view(width)).values()
    return (low.as_py(), high.as_py()) if low.is_valid else None


def arrow_renders(array: pa.Array) -> bool:
    """Whether Arrow's text of these dates or times is what DuckDB reads back.

    Arrow prints ``<value out of range ...>`` for DuckDB's infinite dates and for
    ``24:00:00``, and dates far from today in its own way.
    """
    span = int_range(array)
    if span is None:
        return True
    if pa.types.is_date32(array.type):
        return span[0] >= FIRST_DAY and span[1] <= LAST_DAY
    if pa.types.is_time(array.type):
        return span[1] < DAY[array.type.unit]
    return False


def float_text(array: pa.Array) -> pa.Array | None:
    """CSV text of floats where Arrow would drop the point: ``2.0``, ``-0.0``, not ``2``, ``-0``.

    Without the point readers take the column for integers and ``-0.0`` loses its
    sign. Batches without whole numbers keep Arrow's own rendering (None).
    """
    whole = pc.and_(pc.is_finite(array), pc.equal(pc.floor(array), array))
    if not pc.any(whole).as_py():
        return None
    text = pc.cast(array, pa.string())
    pointless = pc.and_kleene(whole, pc.invert(pc.match_substring(text, "e")))
    return pc.if_else(pointless, pc.binary_join_element_wise(text, ".0", ""), text)


def leaf_floats(array: pa.Array) -> Iterator[pa.Array]:
    """The float arrays inside nested values (lists, structs, maps), at any depth."""
    typ = array.type
    if pa.types.is_floating(typ):
        yield array
    elif pa.types.is_struct(typ):
        for i in range(typ.num_fields):
            yield from leaf_floats(array.field(i))
    elif pa.types.is_map(typ):
        yield from leaf_floats(array.keys)
        yield from leaf_floats(array.items)
    elif pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        yield from leaf_floats(array.flatten())


def check_decimal_digits(field: pa.Field, array: pa.Array) -> None:
    """No decimal(38) past 38 digits reaches DuckDB's to_json, whose overflow on one
    (an internal error) invalidates the database it runs in. The source never sends
    one; an Arrow table from elsewhere might (DuckDB's own HUGEINT, say)."""
    if not pa.types.is_decimal128(field.type) or field.type.precision < 38:
        return
    scale = field.type.scale
    wide = pc.abs(array.cast(pa.decimal256(76, scale)))
    # An exact context: the default one rounds to 28 digits.
    limit = Decimal(DECIMAL_LIMIT).scaleb(-scale, context=Context(prec=80))
    limit_scalar = pa.scalar(limit, pa.decimal256(76, scale))
    largest = pc.max(wide)
    if largest.is_valid and pc.greater(largest, limit_scalar).as_py():
        raise huge_int_error(field.name, type_name(field), str(largest.as_py()))


def check_finite(field: pa.Field, array: pa.Array) -> None:
    """JSON has no NaN or infinity: refuse them rather than write an unreadable file."""
    for leaf in leaf_floats(array):
        if pc.any(pc.invert(pc.is_finite(leaf))).as_py():
            raise non_finite_error(field.name, type_name(field), nested=leaf is not array)


# Text formats are encoded batch by batch on this many threads (Arrow and DuckDB
# release the GIL), while the calling thread reads the next batches and feeds the
# upload; results reach the file in order. One core is left to the reading side
# (DuckDB's scan and sort, the uploads). At most ENCODE_AHEAD batches are in
# flight, which bounds the memory this takes.
ENCODE_THREADS = max(1, min(4, (os.cpu_count() or 2) - 1))
ENCODE_AHEAD = ENCODE_THREADS + 1
# The bytes of one batch, encoded: what the pool hands back in order.
Encoded = Sequence[pa.Buffer]
T = TypeVar("T")


class Renderer:
    """Runs SQL projections over batches, each in a private DuckDB connection.

    Opening a DuckDB connection costs milliseconds of CPU, more than rendering a
    small batch, so connections are kept for the life of the process and lent
    out, one caller at a time: a connection is only ever used by the thread that
    took it, until it gives it back. None holds
    state between uses but its settings (UTC, one thread each), which no
    projection changes.
    """

    _idle: ClassVar[list[duckdb.DuckDBPyConnection]] = []
    _idle_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, select_list: str | None = None) -> None:
        self._select_list = select_list

    @classmethod
    def _take(cls) -> duckdb.DuckDBPyConnection:
        with cls._idle_lock:
            if cls._idle:
                return cls._idle.pop()
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET threads = 1")  # the encoder threads are the parallelism
        return con

    @classmethod
    def _give(cls, con: duckdb.DuckDBPyConnection) -> None:
        with cls._idle_lock:
            cls._idle.append(con)

    def __call__(self, batch: pa.RecordBatch, select_list: str | None = None) -> pa.Table:
        con = self._take()
        try:
            # A relation over the batch, not a registered view: nothing to drop after,
            # and a round trip less per batch (a small file's batch is all it has).
            rel = con.from_arrow(pa.Table.from_batches([batch]))
            table = rel.project(select_list or self._select_list or "*").to_arrow_table()
        except BaseException:
            con.close()  # a connection in an unknown state is not lent again
            raise
        self._give(con)
        return table


# Timestamps of whole seconds in years 1000 to 9999 (nearly all of them) get their
# ISO 8601 text from Arrow's cast with the date/time space turned into a "T": the
# same text DuckDB gives, at a fraction of the cost of a round trip through DuckDB.
FIRST_PLAIN_SECOND = -30_610_224_000  # 1000-01-01 00:00:00


LAST_PLAIN_SECOND = 253_402_300_799  # 9999-12-31 23:59:59


def iso_whole_seconds(array: pa.Array) -> pa.Array | None:
    """ISO 8601 text of timestamps in the common case (zoned ones in UTC); None otherwise."""
    zoned = array.type.tz is not None
    try:
        # Safe casts: one value with a fraction of a second makes this raise.
        seconds = pc.cast(pc.cast(array, pa.timestamp("s", array.type.tz)), pa.timestamp("s"))
    except pa.ArrowInvalid:
        return None
    low, high = pc.min_max(seconds.view(pa.int64())).values()
    if low.is_valid and (low.as_py() < FIRST_PLAIN_SECOND or high.as_py() > LAST_PLAIN_SECOND):
        return None
    text = pc.binary_replace_slice(pc.cast(seconds, pa.string()), 10, 11, "T")
    return pc.binary_join_element_wise(text, "+00", "") if zoned else text


# The encoders' threads are the process's, started as needed and kept: a small export
# opens a writer per partition, and each started threads of its own. No encode waits
# on another task of the pool, so exports sharing it only take turns. Enough threads
# that exports running at once (dbt's threads) each get ENCODE_THREADS.
ENCODE_POOL_THREADS = ENCODE_THREADS * 4


# A batch this small is encoded on the calling thread when nothing of its encoder
# is in flight: handing it to the pool and waiting for it costs more than the work
# (a small export's file is one such batch).
INLINE_ROWS = 2_048


class OrderedEncoder(Generic[T]):
    """Encodes batches on the process's pool; hands each result to ``emit`` in order.

    At most ENCODE_AHEAD batches of one encoder wait or run, and at most
    ENCODE_THREADS of them run at once, as when the encoder had a pool of its own
    (an encode may keep state from batch to batch: the CSV writer's quoting).
    """

    def __init__(self, encode: Callable[[pa.RecordBatch], T], emit: Callable[[T], None]) -> None:
        self._encode = encode
        self._emit = emit
        self._pool = shared_pool("s3-export-encode", ENCODE_POOL_THREADS)
        self._queue: deque[Future[T]] = deque()
        # Batches not yet handed to the pool, and how many of ours it is running.
        self._waiting: deque[tuple[pa.RecordBatch, Future[T]]] = deque()
        self._running = 0
        self._lock = threading.Lock()

    def submit(self, batch: pa.RecordBatch) -> None:
        if not self._queue and batch.num_rows <= INLINE_ROWS:
            self._emit(self._encode(batch))
            return
        result: Future[T] = Future()
        self._queue.append(result)
        with self._lock:
            self._waiting.append((batch, result))
        self._start_next()
        while len(self._queue) > ENCODE_AHEAD:
            self._emit(self._queue.popleft().result())

    def _start_next(self) -> None:
        """Hand the pool the next waiting batches while fewer than ENCODE_THREADS run."""
        while True:
            with self._lock:
                if self._running >= ENCODE_THREADS or not self._waiting:
                    return
                batch, result = self._waiting.popleft()
                if not result.set_running_or_notify_cancel():
                    continue  # cancelled by finish
                self._running += 1
            self._pool.submit(self._run, batch, result)

    def _run(self, batch: pa.RecordBatch, result: Future[T]) -> None:
        try:
            result.set_result(self._encode(batch))
        except BaseException as e:
            result.set_exception(e)
        finally:
            with self._lock:
                self._running -= 1
            self._start_next()

    def emit_ready(self) -> None:
        """Hand ``emit`` the results at the head of the queue that are done, in order."""
        while self._queue and self._queue[0].done():
            self._emit(self._queue.popleft().result())

    def finish(self) -> None:
        try:
            while self._queue:
                self._emit(self._queue.popleft().result())
        finally:
            self.drop()

    def drop(self) -> None:
        """Forget what was not emitted: what has not started never will, and nothing of
        this encoder runs once this returns (as the pool's shutdown did when it was the
        encoder's own)."""
        for future in self._queue:
            future.cancel()
        wait_futures(self._queue)
        self._queue.clear()


def render_ahead(
    batches: Iterable[pa.RecordBatch], render: Callable[[pa.RecordBatch], T]
) -> Iterator[T]:
    """``render(batch)`` of each batch, in order, rendered on the encoders' pool while
    the caller reads the next ones (at most ENCODE_AHEAD batches ahead)."""
    done: deque[T] = deque()
    encoder: OrderedEncoder[T] = OrderedEncoder(render, done.append)
    try:
        for batch in batches:
            encoder.submit(batch)
            encoder.emit_ready()
            while done:
                yield done.popleft()
        encoder.finish()
        while done:
            yield done.popleft()
    finally:
        encoder.drop()
