"""``python -m dbt_s3_export.readers s3://bucket/prefix/``: the files the export commits now.

One URI a line, for shell pipelines and engines that take a list of files. The
bucket is reached as pyarrow reaches it: ``AWS_ENDPOINT_URL``, ``AWS_REGION`` and the
usual credentials from the environment.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import S3ExportError
from . import files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dbt_s3_export.readers",
        description="Print the files of the generation a folder export's manifest commits.",
    )
    parser.add_argument("uri", help="the export's folder: s3://bucket/prefix/")
    parser.add_argument("--json", action="store_true", help="print the manifest instead")
    args = parser.parse_args(argv)
    try:
        found = files(args.uri)
    except S3ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        import json

        print(json.dumps(found.manifest, indent=2))
    else:
        print(*found.uris, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
