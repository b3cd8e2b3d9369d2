"""Benchmark: this package's export path against the usual ways to put a DuckDB table on S3.

Every measurement runs in a fresh Python subprocess against a fresh S3 server
(its own process on 127.0.0.1), so that neither memory nor server state carries
over from one contender to the next. Two servers (``--servers``): SeaweedFS, a
real object store written in Go (``weed server``, started as
``dbt_s3_export.local_s3`` starts it), and moto, AWS's emulation in
single-threaded Python, which takes a core of its own at these rates. The parent process samples the
child's resident memory from the outside (no GIL in the way) between the
moment the child is ready (data source open, clients built) and the moment it
reports the export done: "peak RSS growth" is the highest sample minus the
sample taken at the start.

Contenders (``--contenders``):

- ``ours``: ``dbt_s3_export.run_export`` with ``DuckDBSource``, the code the
  dbt plugin runs, configured only with bucket/key/format/partition_cols (plus
  ``--set`` overrides while tuning);
- ``duckdb``: DuckDB ``COPY ... TO 's3://...' (FORMAT ..., PARTITION_BY (p))``
  through httpfs 1.5.5, loaded by path; for JSON, which DuckDB cannot partition,
  one ``COPY (SELECT ... WHERE p = v)`` per partition;
- ``pyarrow``: ``pyarrow.dataset.write_dataset`` to ``S3FileSystem``, fed
  DuckDB's Arrow reader straight (Hive partitioning by ``p``); parquet and csv;
- ``awswrangler``: ``wr.s3.to_parquet(df, dataset=True, partition_cols=['p'])``
  (the DataFrame is fetched from DuckDB inside the timed part); parquet only;
- ``local``: reference, pyarrow encoding the same partitioned data to local
  disk (DuckDB per-partition COPY for jsonl, pyarrow has no JSON writer);
- ``upload``: reference, boto3 ``upload_file`` of the files ``local`` wrote,
  four files at a time.

Run it through ``benchmarks/run``, which builds the pinned environment.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BUCKET = "bench"
PARTITIONS = 20
DATA_SQL = (
    "SELECT range AS id, range % {p} AS p, random() AS x, 'str_' || (range % 1000) AS s, "
    "TIMESTAMP '2024-01-01' + INTERVAL (range) SECOND AS ts FROM range({n})"
)
FORMATS = ("parquet", "csv", "jsonl")
CONTENDERS = ("ours", "duckdb", "pyarrow", "awswrangler", "local", "upload")
SUPPORTS = {
    "ours": FORMATS,
    "duckdb": FORMATS,
    "pyarrow": ("parquet", "csv"),
    "awswrangler": ("parquet",),
    "local": FORMATS,
    "upload": FORMATS,
}
PEERS = ("duckdb", "pyarrow", "awswrangler")


# --------------------------------------------------------------------------- parent side


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """A fresh moto S3 server process with one empty bucket."""

    name = "moto"

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        req = urllib.request.Request(f"{self.endpoint}/{BUCKET}", method="PUT")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Seaweed:
    """A fresh SeaweedFS server (master, volume, filer and S3 in one process), one bucket."""

    name = "seaweedfs"

    def __init__(self) -> None:
        from dbt_s3_export.local_s3 import SeaweedFS

        self._server = SeaweedFS(
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        ).start()
        self._server.create_buckets(BUCKET)
        self.endpoint = self._server.endpoint
        assert self._server.proc is not None
        self.proc = self._server.proc

    def stop(self) -> None:
        self._server.stop()


SERVERS = {"seaweedfs": Seaweed, "moto": Moto}


def make_data(path: Path, n: int) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS " + DATA_SQL.format(p=PARTITIONS, n=n))
    con.close()


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one contender in a child process; sample its RSS while it exports."""
    import psutil

    child = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--worker", json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "READY":
        child.wait()
        raise RuntimeError(f"worker failed to start: {spec['contender']} {spec['format']}")
    proc = psutil.Process(child.pid)
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    child.stdin.write("GO\n")
    child.stdin.flush()
    done = child.stdout.readline()  # the export finished: stop sampling here
    stop.set()
    sampler.join()
    out = child.stdout.readline()  # then what landed, read back after the clock stopped
    child.stdin.close()
    child.wait()
    if child.returncode != 0 or not done or not out:
        raise RuntimeError(f"worker failed: {spec['contender']} {spec['format']}")
    result: dict[str, Any] = {**json.loads(done), **json.loads(out)}
    result["rss_mb"] = (peak[0] - base) / 1e6
    return result


def run_one(spec: dict[str, Any], server_name: str) -> dict[str, Any]:
    needs_s3 = spec["contender"] != "local"
    server = SERVERS[server_name]() if needs_s3 else None
    try:
        if server is not None:
            spec = {**spec, "endpoint": server.endpoint}
        result = measure(spec)
        if server is not None:
            import psutil

            times = psutil.Process(server.proc.pid).cpu_times()
            result["s3_cpu"] = times.user + times.system
        return result
    finally:
        if server is not None:
            server.stop()


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def report(n: int, fmt: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Print one table (medians) and return its figures."""
    med: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        med[name] = {
            "seconds": statistics.median(r["seconds"] for r in rs),
            "rss_mb": statistics.median(r["rss_mb"] for r in rs),
            "bytes": statistics.median(r["bytes"] for r in rs),
            "files": rs[-1]["files"],
            "rows_per_group": rs[-1].get("rows_per_group"),
            "runs": len(rs),
        }
    ours = med.get("ours", {}).get("seconds")
    header = ["contender", "seconds", "RSS +MB", "MB out", "files", "rows/group", "ours/this"]
    rows = []
    for name, m in med.items():
        ratio = f"{ours / m['seconds']:.2f}" if ours and name != "ours" else ""
        m["ours_ratio"] = ours / m["seconds"] if ours and name != "ours" else None
        rpg = m["rows_per_group"]
        rows.append(
            [
                name,
                f"{m['seconds']:.2f}",
                f"{m['rss_mb']:.0f}",
                f"{m['bytes'] / 1e6:.1f}",
                str(m["files"]),
                f"{rpg:,.0f}" if rpg else "",
                ratio,
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\nN={n:,} {fmt} (median of {max(m['runs'] for m in med.values())})")
    print(fmt_row(header, widths))
    for r in rows:
        print(fmt_row(r, widths))
    return med


def check_targets(results: dict[str, Any], big: int, huge: int | None) -> None:
    """Print each target of the benchmark with the measured figure and a verdict."""
    print("\nTargets")
    limits = {"parquet": 0.9, "csv": 0.8, "jsonl": 1.0}
    table = results.get(str(big), {})
    for fmt, limit in limits.items():
        med = table.get(fmt)
        if not med or "ours" not in med:
            continue
        ours = med["ours"]
        if "duckdb" in med:
            r = ours["seconds"] / med["duckdb"]["seconds"]
            print(f"  {fmt}: ours/duckdb = {r:.2f} (target <= {limit}) {verdict(r <= limit)}")
        if "local" in med and "upload" in med:
            ref = max(med["local"]["seconds"], med["upload"]["seconds"])
            r = ours["seconds"] / ref
            print(f"  {fmt}: ours/max(local, upload) = {r:.2f} (target <= 1.3) {verdict(r <= 1.3)}")
        print(
            f"  {fmt}: ours peak RSS growth = {ours['rss_mb']:.0f} MB (target <= 300) "
            f"{verdict(ours['rss_mb'] <= 300)}"
        )
        if huge is not None and fmt in results.get(str(huge), {}):
            other = results[str(huge)][fmt]["ours"]["rss_mb"]
            r = other / ours["rss_mb"] if ours["rss_mb"] else float("inf")
            print(
                f"  {fmt}: ours RSS growth N={huge:,} / N={big:,} = {other:.0f}/"
                f"{ours['rss_mb']:.0f} MB = {r:.2f} (target 0.8..1.2, <= 300 MB) "
                f"{verdict(0.8 <= r <= 1.2 and other <= 300)}"
            )
        if fmt == "parquet" and "duckdb" in med:
            r = ours["bytes"] / med["duckdb"]["bytes"]
            print(
                f"  parquet: ours bytes / duckdb bytes = {r:.3f} (target <= 1.0), "
                f"rows per row group {ours['rows_per_group']:,.0f} {verdict(r <= 1.0)}"
            )


def measure_all(
    server: str,
    names: list[str],
    formats: list[str],
    reps: int,
    n: int,
    db: Path,
    work: Path,
    overrides: dict[str, Any],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every contender on every format, ``reps`` times, each against a fresh ``server``."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {f: {} for f in formats}
    for rep in range(reps):
        for fmt in formats:
            order = [c for c in names if fmt in SUPPORTS[c]]
            # Alternate who goes first; 'upload' needs the files 'local' wrote.
            order = order[rep % len(order) :] + order[: rep % len(order)]
            if "upload" in order:
                order.remove("upload")
                if "local" not in order:
                    order.insert(0, "local")
                order.insert(order.index("local") + 1, "upload")
            for name in order:
                spec = {
                    "contender": name,
                    "format": fmt,
                    "db": str(db),
                    "n": n,
                    "local_dir": str(work / f"local-{fmt}"),
                    "overrides": overrides,
                }
                r = run_one(spec, server)
                runs[fmt].setdefault(name, []).append(r)
                print(
                    f"  rep {rep + 1} {fmt:7} {name:11} {r['seconds']:7.2f}s "
                    f"{r['rss_mb']:6.0f} MB  cpu {r['cpu']:6.2f}s  "
                    f"server cpu {r.get('s3_cpu', 0):6.2f}s",
                    flush=True,
                )
    return runs


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N=1M, one repetition (smoke test)")
    ap.add_argument("--sizes", default="1000000,10000000", help="row counts, comma-separated")
    ap.add_argument(
        "--memory-size",
        type=int,
        default=30_000_000,
        help="extra N at which only 'ours' runs, to show memory does not grow "
        "with the table (0 to skip)",
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--servers", default=",".join(SERVERS), help="S3 servers to measure against")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="extra s3_export option for 'ours' (tuning), e.g. batch_size=65536",
    )
    ap.add_argument("--json", type=Path, help="also write the medians to this file")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    reps, huge = args.reps, args.memory_size or None
    if args.quick:
        sizes, reps, huge = [1_000_000], 1, None
    formats = args.formats.split(",")
    contenders = args.contenders.split(",")
    servers = args.servers.split(",")
    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {
        k: json.loads(v) if v[:1] in '0123456789[{tf"' else v for k, v in overrides.items()
    }
    print(
        f"python {sys.version.split()[0]}, cpus {os.cpu_count()}, overrides {overrides or 'none'}"
    )
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="s3-export-bench-"))
    try:
        plan = [(n, contenders) for n in sizes]
        if huge and "ours" in contenders:
            plan.append((huge, ["ours"]))
        for n, names in plan:
            db = work / f"data-{n}.duckdb"
            started = time.monotonic()
            make_data(db, n)
            print(f"\ngenerated N={n:,} in {time.monotonic() - started:.1f}s")
            for server in servers:
                print(f"\n== {server} ==")
                n_reps = 1 if n == huge else reps
                runs = measure_all(server, names, formats, n_reps, n, db, work, overrides)
                results.setdefault(server, {})[str(n)] = {
                    fmt: report(n, fmt, {c: runs[fmt][c] for c in names if c in runs[fmt]})
                    for fmt in formats
                    if runs[fmt]
                }
            db.unlink()
        big = max(sizes)
        for server in servers:
            print(f"\n== {server} ==")
            check_targets(results[server], big, huge)
        if args.json:
            args.json.write_text(json.dumps({"overrides": overrides, "results": results}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- child side


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=20),
    )


def s3_output(endpoint: str, fmt: str, prefix: str) -> dict[str, Any]:
    """What landed under ``prefix``: data files, bytes, and Parquet rows per row group."""
    import pyarrow.parquet as pq

    client = s3_client(endpoint)
    keys, size = [], 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            # Data files only: not the manifest, lease or any other control file.
            if not obj["Key"].rsplit("/", 1)[-1].startswith("_") and not obj["Key"].endswith("/"):
                keys.append(obj["Key"])
                size += obj["Size"]
    out: dict[str, Any] = {"files": len(keys), "bytes": size}
    if fmt == "parquet" and keys:
        fs = s3fs(endpoint)
        rows = groups = 0
        for key in keys:
            meta = pq.ParquetFile(fs.open_input_file(f"{BUCKET}/{key}")).metadata
            rows += meta.num_rows
            groups += meta.num_row_groups
        out["rows_per_group"] = rows / groups if groups else 0
        out["rows"] = rows
    return out


def s3fs(endpoint: str) -> Any:
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
    )


def local_output(root: Path, fmt: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    files = [p for p in root.rglob("*") if p.is_file()]
    out: dict[str, Any] = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    if fmt == "parquet" and files:
        metas = [pq.ParquetFile(p).metadata for p in files]
        out["rows_per_group"] = sum(m.num_rows for m in metas) / sum(
            m.num_row_groups for m in metas
        )
    return out


def httpfs_path() -> str:
    import duckdb_extension_httpfs

    root = Path(duckdb_extension_httpfs.__file__).parent
    return str(next(root.rglob("httpfs.duckdb_extension")))


def duckdb_s3(con: Any, endpoint: str) -> None:
    con.execute(f"LOAD '{httpfs_path()}'")
    con.execute(f"SET s3_endpoint = '{endpoint.removeprefix('http://')}'")
    con.execute("SET s3_url_style = 'path'")
    con.execute("SET s3_use_ssl = false")
    con.execute("SET s3_region = 'us-east-1'")
    con.execute(f"SET s3_access_key_id = '{os.environ['AWS_ACCESS_KEY_ID']}'")
    con.execute(f"SET s3_secret_access_key = '{os.environ['AWS_SECRET_ACCESS_KEY']}'")


DUCK_FORMAT = {
    "parquet": "FORMAT parquet, COMPRESSION snappy",
    "csv": "FORMAT csv, HEADER true",
    "jsonl": "FORMAT json",
}


def worker(spec: dict[str, Any]) -> None:
    import duckdb

    name, fmt, endpoint = spec["contender"], spec["format"], spec.get("endpoint", "")
    local_dir = Path(spec["local_dir"])
    con = duckdb.connect(spec["db"], read_only=True)
    # Every column's blocks in memory first, as they are in a dbt run that has just
    # built the table: growth then measures the export, not DuckDB's block cache.
    con.execute("SELECT max(id), max(p), max(x), max(s), max(ts) FROM t").fetchall()
    # One-time imports (pyarrow loads pandas lazily when it is installed) happen
    # once per process, before the clock starts, for every contender alike.
    import pyarrow as pa

    pa.scalar(False)
    prefix = f"{name}/"
    run: Any
    if name == "ours":
        from dbt_s3_export import DuckDBSource, ExportConfig, RunContext, run_export
        from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings

        cfg = ExportConfig.parse(
            {
                "bucket": BUCKET,
                "key": prefix,
                "file_format": fmt,
                "partition_cols": ["p"],
                "endpoint_url": endpoint,
                "region": "us-east-1",
                **spec["overrides"],
            }
        )
        client = ClientCache().get(ConnectionSettings.of(cfg))
        source = DuckDBSource(con, "t")

        def run() -> None:
            run_export(cfg, source, client, RunContext(model="bench"))
    elif name == "duckdb":
        duckdb_s3(con, endpoint)
        target = f"s3://{BUCKET}/{prefix.rstrip('/')}"

        def run() -> None:
            if fmt == "jsonl":
                for v in range(PARTITIONS):
                    con.execute(
                        f"COPY (SELECT * EXCLUDE (p) FROM t WHERE p = {v}) "
                        f"TO '{target}/p={v}/data.json' ({DUCK_FORMAT[fmt]})"
                    )
            else:
                con.execute(f"COPY t TO '{target}' ({DUCK_FORMAT[fmt]}, PARTITION_BY (p))")
    elif name == "pyarrow":
        import pyarrow.dataset as pads

        fs = s3fs(endpoint)

        def run() -> None:
            reader = con.sql("SELECT * FROM t").to_arrow_reader()
            pads.write_dataset(
                reader,
                f"{BUCKET}/{prefix.rstrip('/')}",
                format=fmt,
                filesystem=fs,
                partitioning=["p"],
                partitioning_flavor="hive",
            )
    elif name == "awswrangler":
        import awswrangler as wr

        wr.config.s3_endpoint_url = endpoint

        def run() -> None:
            df = con.sql("SELECT * FROM t").df()
            wr.s3.to_parquet(df, f"s3://{BUCKET}/{prefix}", dataset=True, partition_cols=["p"])
    elif name == "local":
        import pyarrow.dataset as pads

        shutil.rmtree(local_dir, ignore_errors=True)
        local_dir.mkdir(parents=True)

        def run() -> None:
            if fmt == "jsonl":
                for v in range(PARTITIONS):
                    (local_dir / f"p={v}").mkdir()
                    con.execute(
                        f"COPY (SELECT * EXCLUDE (p) FROM t WHERE p = {v}) "
                        f"TO '{local_dir}/p={v}/data.json' ({DUCK_FORMAT[fmt]})"
                    )
                return
            reader = con.sql("SELECT * FROM t").to_arrow_reader()
            pads.write_dataset(
                reader,
                str(local_dir),
                format=fmt,
                partitioning=["p"],
                partitioning_flavor="hive",
                min_rows_per_group=500_000,
                max_rows_per_group=1_000_000,
            )
    elif name == "upload":
        client = s3_client(endpoint)
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())

        def run() -> None:
            with ThreadPoolExecutor(4) as pool:
                list(
                    pool.map(
                        lambda p: client.upload_file(
                            str(p), BUCKET, prefix + str(p.relative_to(local_dir))
                        ),
                        files,
                    )
                )
    else:
        raise SystemExit(f"unknown contender {name}")

    print("READY", flush=True)
    sys.stdin.readline()
    started, cpu = time.perf_counter(), time.process_time()
    run()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu}), flush=True)
    out = local_output(local_dir, fmt) if name == "local" else s3_output(endpoint, fmt, prefix)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
    else:
        main()
