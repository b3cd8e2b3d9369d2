-- case: csv_integration_append
-- step: unload
begin;
COPY INTO 's3://lake/exports/events/'
STORAGE_INTEGRATION = s3_exports
ENCRYPTION = (TYPE = 'AWS_SSE_KMS' KMS_KEY_ID = 'arn:aws:kms:us-east-1:123456789012:key/abc')
FROM (SELECT "ID", "NAME", "AMOUNT", "DAY" FROM analytics.exports.events)
FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = '\t' FIELD_OPTIONALLY_ENCLOSED_BY = '"' NULL_IF = ('') EMPTY_FIELD_AS_NULL = FALSE COMPRESSION = GZIP)
HEADER = FALSE
INCLUDE_QUERY_ID = TRUE
DETAILED_OUTPUT = TRUE;
commit;

-- step: files
SELECT $1, $2, $3 FROM TABLE(RESULT_SCAN(LAST_QUERY_ID(-2)))

-- case: csv_keys_in_sql_append
-- step: unload
begin;
COPY INTO 's3://lake/exports/events/'
CREDENTIALS = (AWS_KEY_ID = '***' AWS_SECRET_KEY = '***')
FROM (SELECT "ID", "NAME", "AMOUNT", "DAY" FROM analytics.exports.events)
FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = ',' FIELD_OPTIONALLY_ENCLOSED_BY = '"' NULL_IF = ('') EMPTY_FIELD_AS_NULL = FALSE COMPRESSION = NONE)
HEADER = TRUE
INCLUDE_QUERY_ID = TRUE
DETAILED_OUTPUT = TRUE;
commit;

-- step: files
SELECT $1, $2, $3 FROM TABLE(RESULT_SCAN(LAST_QUERY_ID(-2)))

-- case: jsonl_single_object
-- step: unload
begin;
COPY INTO 's3://lake/exports/events.jsonl'
STORAGE_INTEGRATION = s3_exports
FROM (SELECT OBJECT_CONSTRUCT_KEEP_NULL('ID', "ID", 'NAME', "NAME", 'AMOUNT', "AMOUNT", 'DAY', "DAY") FROM analytics.exports.events)
FILE_FORMAT = (TYPE = JSON COMPRESSION = NONE)
SINGLE = TRUE
MAX_FILE_SIZE = 5368709120
OVERWRITE = TRUE;
commit;

-- case: parquet_single_error_if_exists
-- step: check
LIST @lake_stage/exports/events.parquet

-- step: unload
begin;
COPY INTO @lake_stage/exports/events.parquet
FROM (SELECT "ID", "NAME", "AMOUNT", "DAY" FROM analytics.exports.events)
FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY)
HEADER = TRUE
SINGLE = TRUE
MAX_FILE_SIZE = 5368709120
OVERWRITE = TRUE;
commit;

-- case: parquet_stage_replace_partitioned
-- step: unload
begin;
COPY INTO @analytics.exports.lake_stage/exports/events/
FROM (SELECT "ID", "NAME", "AMOUNT", "DAY" FROM analytics.exports.events WHERE (id > 0 and name <> 'x'))
PARTITION BY ('day=' || COALESCE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(TO_VARCHAR("DAY"), '%', '%25'), '"', '%22'), '#', '%23'), '\'', '%27'), '*', '%2A'), '/', '%2F'), ':', '%3A'), '=', '%3D'), '?', '%3F'), '\\', '%5C'), '{', '%7B'), '[', '%5B'), ']', '%5D'), '^', '%5E'), '__HIVE_DEFAULT_PARTITION__'))
FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY)
HEADER = TRUE
MAX_FILE_SIZE = 67108864
INCLUDE_QUERY_ID = TRUE
DETAILED_OUTPUT = TRUE;
commit;

-- step: files
SELECT $1, $2, $3 FROM TABLE(RESULT_SCAN(LAST_QUERY_ID(-2)))

-- step: list
LIST @analytics.exports.lake_stage/exports/events/

-- step: manifest
begin;
COPY INTO @analytics.exports.lake_stage/exports/events/_manifest.json
FROM (SELECT PARSE_JSON($${"adapter": "snowflake", "compression": null, "created_at": "2024-05-01T12:00:00Z", "destination": "s3://lake/exports/events/", "file_format": "parquet", "files": [{"bytes": 900, "generation": "20240501T120000Z-0a1b2c3d", "key": "exports/events/day=2024-01-01/data_01b2c3d4-0000-1111-0000-000012345678_0_0_0.snappy.parquet", "rows": 3}, {"bytes": 800, "generation": "20240501T120000Z-0a1b2c3d", "key": "exports/events/day=2024-01-02/data_01b2c3d4-0000-1111-0000-000012345678_0_0_0.snappy.parquet", "rows": 2}], "format_version": 1, "generation": "20240501T120000Z-0a1b2c3d", "mode": "replace", "model": "events", "partition_cols": ["day"], "query_ids": ["01b2c3d4-0000-1111-0000-000012345678"]}$$))
FILE_FORMAT = (TYPE = JSON COMPRESSION = NONE)
SINGLE = TRUE
OVERWRITE = TRUE;
commit;

-- step: remove
REMOVE @analytics.exports.lake_stage/exports/events/day=2023-12-31/data_01aaaaaa-0000-1111-0000-000099999999_

-- step: remove
REMOVE @analytics.exports.lake_stage/exports/events/day=2024-01-01/data_01aaaaaa-0000-1111-0000-000099999999_
