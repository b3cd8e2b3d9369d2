"""Peak memory of an export whose rows are wide (long strings), format by format.

Batches are bounded by bytes as well as rows: a batch of the default 131,072
rows of 64 KiB strings would hold 8 GiB. Each measurement runs in a fresh
Python process that opens a DuckDB file holding ``--rows`` rows of
``--width``-byte strings and exports it to an S3 endpoint; the process reports
its peak RSS (``ru_maxrss``) minus its RSS just before the export. Two
references run the same way: ``duckdb`` drains DuckDB's own Arrow reader
(2,048 rows at a time, DuckDB's vector size) and ``read`` drains the export's
source, with no writing.

    python benchmarks/wide_rows.py                       # starts a local SeaweedFS
    python benchmarks/wide_rows.py --endpoint http://127.0.0.1:9000 --json out.json

Needs only the test environment (.venv from scripts/test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODES = ("duckdb", "read", "parquet", "csv", "json", "jsonl")
BUCKET = "wide-rows"
MIB = 1024 * 1024


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def make_data(path: Path, rows: int, width: int) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.execute(
            f"CREATE TABLE wide AS SELECT i AS id, i % 4 AS p, "
            f"repeat(chr(65 + (i % 26)::INTEGER), {width}) AS s FROM range({rows}) t(i)"
        )
        con.execute("CHECKPOINT")


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    import boto3
    import duckdb
    from botocore.config import Config

    sys.path.insert(0, str(HERE.parent))
    from dbt_s3_export import DuckDBSource, ExportConfig, run_export

    config = {"threads": spec["threads"]} if spec.get("threads") else {}
    con = duckdb.connect(spec["database"], read_only=True, config=config)
    client = boto3.client(
        "s3",
        endpoint_url=spec["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=spec["access_key"],
        aws_secret_access_key=spec["secret_key"],
        config=Config(s3={"addressing_style": "path"}),
    )
    mode = spec["mode"]
    start = _rss_mib()
    began = time.monotonic()
    rows = 0
    if mode == "duckdb":
        for batch in con.sql("SELECT * FROM wide").to_arrow_reader(2048):
            rows += batch.num_rows
    elif mode == "read":
        reader = DuckDBSource(con, "wide").open([], 131_072)
        for batch in reader:
            rows += batch.num_rows
    else:
        options = {"bucket": BUCKET, "key": f"{mode}/", "file_format": mode}
        result = run_export(
            ExportConfig.parse(options), DuckDBSource(con, "wide", file_format=mode), client
        )
        rows = result.rows
    return {
        "mode": mode,
        "rows": rows,
        "seconds": round(time.monotonic() - began, 2),
        "start_mib": round(start),
        "peak_growth_mib": round(_peak_mib() - start),
    }


def measure(
    database: Path, endpoint: str, keys: tuple[str, str], modes: list[str], threads: int | None
) -> list[dict[str, Any]]:
    results = []
    for mode in modes:
        spec = {
            "database": str(database),
            "endpoint": endpoint,
            "access_key": keys[0],
            "secret_key": keys[1],
            "mode": mode,
            "threads": threads,
        }
        out = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{mode} failed:\n{out.stderr}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--width", type=int, default=64 * 1024, help="bytes per string")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--endpoint", help="S3 endpoint (default: start a local SeaweedFS)")
    parser.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "testing"))
    parser.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
    parser.add_argument(
        "--threads", type=int, help="DuckDB threads (default: DuckDB's own, one per core)"
    )
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    keys = (args.access_key, args.secret_key)
    server = None
    endpoint = args.endpoint
    if endpoint is None:
        sys.path.insert(0, str(HERE.parent))
        from dbt_s3_export.local_s3 import SeaweedFS

        server = SeaweedFS(access_key=keys[0], secret_key=keys[1])
        server.start()
        endpoint = server.endpoint
    try:
        if server is not None:
            server.create_buckets(BUCKET)  # ready for writes: no first-volume wait in a timing
        else:
            import boto3

            boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=keys[0],
                aws_secret_access_key=keys[1],
            ).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="wide-rows-") as tmp:
            database = Path(tmp) / "wide.duckdb"
            make_data(database, args.rows, args.width)
            results = measure(database, endpoint, keys, args.modes.split(","), args.threads)
    finally:
        if server is not None:
            server.stop()
    table_mib = args.rows * args.width / MIB
    print(f"{args.rows} rows of {args.width // 1024} KiB strings ({table_mib:.0f} MiB of text)")
    print(f"{'mode':8} {'seconds':>8} {'peak RSS growth':>16}")
    for r in results:
        print(f"{r['mode']:8} {r['seconds']:8.2f} {r['peak_growth_mib']:13d} MiB")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": args.rows, "width": args.width, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
