"""Start a local S3-compatible server (moto) on 127.0.0.1 and create buckets.

Usage: python scripts/local_s3.py PORT BUCKET...   (runs until killed)
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import boto3


def main() -> int:
    port, buckets = sys.argv[1], sys.argv[2:]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
        )
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        print(f"local S3 ready at {endpoint} with buckets: {', '.join(buckets)}", flush=True)
        return server.wait()
    finally:
        server.terminate()


if __name__ == "__main__":
    sys.exit(main())
