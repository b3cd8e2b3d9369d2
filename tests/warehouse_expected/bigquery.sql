-- case: csv_gzip_tab
-- step: unload
EXPORT DATA
WITH CONNECTION `analytics.aws-us-east-1.s3_exports`
OPTIONS (uri = 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/part-*.csv.gz', format = 'CSV', header = true, field_delimiter = '\t', compression = 'GZIP')
AS SELECT * FROM `analytics`.`exports`.`events`

-- case: jsonl_append
-- step: unload
EXPORT DATA
WITH CONNECTION `analytics.aws-us-east-1.s3_exports`
OPTIONS (uri = 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/part-*.json', format = 'JSON')
AS SELECT * FROM `analytics`.`exports`.`events`

-- case: parquet_zstd
-- step: unload
EXPORT DATA
WITH CONNECTION `analytics.aws-us-east-1.s3_exports`
OPTIONS (uri = 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/part-*.parquet', format = 'PARQUET', compression = 'ZSTD')
AS SELECT * FROM `analytics`.`exports`.`events` WHERE (name != 'x')
