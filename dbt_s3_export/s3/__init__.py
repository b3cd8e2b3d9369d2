"""S3 access: requests, their errors, credentials and deadlines.

``transfer`` streams a run's files into objects, ``objects`` sends every other
request (small objects read and written whole, conditionally too; listings;
deletes), ``error_table`` says what each S3, STS and Glue error means and
``translate`` turns every botocore error into one of ours by that table,
``credentials`` makes sessions and clients from the options (keys, profiles, roles),
``redaction`` scrubs their secret values out of text,
``deadlines`` bounds each request, ``expect`` lets small uploads go without waiting
for the server's 100 Continue, ``timestamps`` reads the dates of answers without
dateutil, ``duckdb_s3`` reads DuckDB's own S3 settings from
the dbt-duckdb profile as defaults. Only this folder and ``tables`` call botocore.
May import ``errors``, ``pools`` and ``options``; knows nothing of encoding, commits or tables.
"""
