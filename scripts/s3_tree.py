"""Print the objects in S3 buckets as a tree, with sizes.

Usage: python scripts/s3_tree.py ENDPOINT_URL BUCKET...
"""

from __future__ import annotations

import sys
from typing import Any

import boto3


def tree(paths: dict[str, int]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, size in sorted(paths.items()):
        node = root
        parts = key.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        node[parts[-1]] = size
    return root


def show(node: dict[str, Any], indent: str = "") -> None:
    items = list(node.items())
    for i, (name, child) in enumerate(items):
        last = i == len(items) - 1
        branch = "└── " if last else "├── "
        if isinstance(child, dict):
            print(f"{indent}{branch}{name}")
            show(child, indent + ("    " if last else "│   "))
        else:
            print(f"{indent}{branch}{name}  ({child:,} bytes)")


def main() -> None:
    endpoint, buckets = sys.argv[1], sys.argv[2:]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for bucket in buckets:
        sizes: dict[str, int] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                sizes[obj["Key"]] = obj["Size"]
        print(f"{bucket}/")
        show(tree(sizes))
        print()


if __name__ == "__main__":
    main()
