-- case: csv_gzip_tab
-- step: location
SELECT location FROM `analytics`.`region-aws-us-east-1`.INFORMATION_SCHEMA.SCHEMATA WHERE schema_name = 'exports'

-- step: unload
EXPORT DATA
WITH CONNECTION `analytics.aws-us-east-1.s3_exports`
OPTIONS (uri = 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/part-*.csv.gz', format = 'CSV', header = true, field_delimiter = '\t', compression = 'GZIP')
AS SELECT * FROM `analytics`.`exports`.`events`

-- case: hostile
-- step: location
SELECT location FROM `analytics`.`region-aws-us-east-1`.INFORMATION_SCHEMA.SCHEMATA WHERE schema_name = 'exports'

-- step: unload
EXPORT DATA
WITH CONNECTION `analytics.aws-us-east-1.s3_exports`
OPTIONS (uri = 's3://lake.with.dots/exports/it\'s here \\ ünï/20240501T120000Z-0a1b2c3d/part-*.csv', format = 'CSV', header = true, field_delimiter = '\t')
AS SELECT * FROM `analytics`.`exports`.`events` WHERE (`select` <> 'it\'s' and name <> 'C:\\dir\\')

-- case: jsonl_append
-- step: location
SELECT location FROM `analytics`.`region-aws-us-east-1`.INFORMATION_SCHEMA.SCHEMATA WHERE schema_name = 'exports'

-- step: unload
EXPORT DATA
WITH CONNECTION `analytics.aws-us-east-1.s3_exports`
OPTIONS (uri = 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/part-*.json', format = 'JSON')
AS SELECT * FROM `analytics`.`exports`.`events`

-- case: parquet_zstd
-- step: location
SELECT location FROM `analytics`.`region-aws-us-east-1`.INFORMATION_SCHEMA.SCHEMATA WHERE schema_name = 'exports'

-- step: unload
EXPORT DATA
WITH CONNECTION `analytics.aws-us-east-1.s3_exports`
OPTIONS (uri = 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/part-*.parquet', format = 'PARQUET', compression = 'ZSTD')
AS SELECT * FROM `analytics`.`exports`.`events` WHERE (name != 'x')
