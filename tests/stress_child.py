"""One export in a process of its own, slow enough to be killed halfway (test_stress.py).

python -m tests.stress_child ENDPOINT BUCKET PREFIX TAG MODE PARTS PAUSE
"""

from __future__ import annotations

import sys

from dbt_s3_export import ExportConfig, RunContext, run_export

from .engine import engine_client, table
from .test_commit import SlowSource

LEASE_TTL = 2


def main(argv: list[str]) -> None:
    endpoint, bucket, prefix, tag, mode, parts, pause = argv
    cfg = ExportConfig.parse(
        {
            "bucket": bucket,
            "key": prefix,
            "file_format": "parquet",
            "partition_cols": ["p"],
            "mode": mode,
            "lease_ttl_seconds": LEASE_TTL,
            "lease_wait_seconds": 120,
        }
    )
    data = table(40, tag=tag, partitions=4)
    wanted = [int(p) for p in parts.split(",")]
    data = data.filter([p in wanted for p in data.column("p").to_pylist()])
    run_export(
        cfg,
        SlowSource(data, pause=float(pause)),
        engine_client(endpoint),
        RunContext(model="stress", unique_id="model.p.stress"),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
