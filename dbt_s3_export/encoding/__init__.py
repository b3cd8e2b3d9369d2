"""Encoding: from Arrow batches to the bytes of CSV, Parquet, JSON and JSONL files.

``typemap`` decides per column and format what is written (or refuses it),
``writers`` encode batches into any binary sink (``text`` holds what the CSV and JSON
writers share: values as text, encoding ahead on a small pool), ``partitioning`` names the Hive
folders of partition values, ``files`` rolls a stream of partition slices into
files and hands their bytes to an uploader. Writers import no boto3. May import
``errors``, ``pools``, ``options`` and ``s3.transfer`` (``files`` only); knows nothing of dbt,
commits or tables.
"""
