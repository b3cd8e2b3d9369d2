-- case: csv_integration_append
-- step: unload
begin;
COPY INTO 's3://lake/exports/events/'
STORAGE_INTEGRATION = s3_exports
ENCRYPTION = (TYPE = 'AWS_SSE_KMS' KMS_KEY_ID = 'arn:aws:kms:us-east-1:123456789012:key/abc')
FROM (SELECT "ID" AS "id", "NAME" AS "name", "AMOUNT" AS "amount", "DAY" AS "day" FROM analytics.exports.events)
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
FROM (SELECT "ID" AS "id", "NAME" AS "name", "AMOUNT" AS "amount", "DAY" AS "day" FROM analytics.exports.events)
FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = ',' FIELD_OPTIONALLY_ENCLOSED_BY = '"' NULL_IF = ('') EMPTY_FIELD_AS_NULL = FALSE COMPRESSION = NONE)
HEADER = TRUE
INCLUDE_QUERY_ID = TRUE
DETAILED_OUTPUT = TRUE;
commit;

-- step: files
SELECT $1, $2, $3 FROM TABLE(RESULT_SCAN(LAST_QUERY_ID(-2)))

-- case: hostile
-- step: unload
begin;
COPY INTO '@analytics.exports.lake_stage/exports/it\'s here \\ ünï/'
FROM (SELECT OBJECT_CONSTRUCT_KEEP_NULL('select', "select", 'it\'s "x"', "it's ""x""", 'at', "AT", 'name', "NAME", 'ts', "TS") AS "S3_EXPORT_ROW" FROM analytics.exports.events WHERE ("select" <> 'it''s' and "name" <> 'C:\\dir\\' and "name" <> '"q"'))
PARTITION BY ('name=' || COALESCE(IFF(TO_VARCHAR(GET("S3_EXPORT_ROW", 'name')::TEXT) = '__HIVE_DEFAULT_PARTITION__', '%5F%5FHIVE_DEFAULT_PARTITION%5F%5F', REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(TO_VARCHAR(GET("S3_EXPORT_ROW", 'name')::TEXT), '%', '%25'), '\u0000', '%00'), '\u0001', '%01'), '\u0002', '%02'), '\u0003', '%03'), '\u0004', '%04'), '\u0005', '%05'), '\u0006', '%06'), '\u0007', '%07'), '\u0008', '%08'), '\t', '%09'), '\n', '%0A'), '\u000B', '%0B'), '\u000C', '%0C'), '\r', '%0D'), '\u000E', '%0E'), '\u000F', '%0F'), '\u0010', '%10'), '\u0011', '%11'), '\u0012', '%12'), '\u0013', '%13'), '\u0014', '%14'), '\u0015', '%15'), '\u0016', '%16'), '\u0017', '%17'), '\u0018', '%18'), '\u0019', '%19'), '\u001A', '%1A'), '\u001B', '%1B'), '\u001C', '%1C'), '\u001D', '%1D'), '\u001E', '%1E'), '\u001F', '%1F'), ' ', '%20'), '!', '%21'), '"', '%22'), '#', '%23'), '$', '%24'), '&', '%26'), '\'', '%27'), '(', '%28'), ')', '%29'), '*', '%2A'), '+', '%2B'), ',', '%2C'), '/', '%2F'), ':', '%3A'), ';', '%3B'), '<', '%3C'), '=', '%3D'), '>', '%3E'), '?', '%3F'), '@', '%40'), '[', '%5B'), '\\', '%5C'), ']', '%5D'), '^', '%5E'), '`', '%60'), '{', '%7B'), '|', '%7C'), '}', '%7D'), '\u007F', '%7F')), '__HIVE_DEFAULT_PARTITION__') || '/ts=' || COALESCE(IFF(REGEXP_REPLACE(TO_VARCHAR(GET("S3_EXPORT_ROW", 'ts')::TIMESTAMP_NTZ, 'YYYY-MM-DD HH24:MI:SS.FF9'), '\\.?0*$', '') = '__HIVE_DEFAULT_PARTITION__', '%5F%5FHIVE_DEFAULT_PARTITION%5F%5F', REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REGEXP_REPLACE(TO_VARCHAR(GET("S3_EXPORT_ROW", 'ts')::TIMESTAMP_NTZ, 'YYYY-MM-DD HH24:MI:SS.FF9'), '\\.?0*$', ''), '%', '%25'), '\u0000', '%00'), '\u0001', '%01'), '\u0002', '%02'), '\u0003', '%03'), '\u0004', '%04'), '\u0005', '%05'), '\u0006', '%06'), '\u0007', '%07'), '\u0008', '%08'), '\t', '%09'), '\n', '%0A'), '\u000B', '%0B'), '\u000C', '%0C'), '\r', '%0D'), '\u000E', '%0E'), '\u000F', '%0F'), '\u0010', '%10'), '\u0011', '%11'), '\u0012', '%12'), '\u0013', '%13'), '\u0014', '%14'), '\u0015', '%15'), '\u0016', '%16'), '\u0017', '%17'), '\u0018', '%18'), '\u0019', '%19'), '\u001A', '%1A'), '\u001B', '%1B'), '\u001C', '%1C'), '\u001D', '%1D'), '\u001E', '%1E'), '\u001F', '%1F'), ' ', '%20'), '!', '%21'), '"', '%22'), '#', '%23'), '$', '%24'), '&', '%26'), '\'', '%27'), '(', '%28'), ')', '%29'), '*', '%2A'), '+', '%2B'), ',', '%2C'), '/', '%2F'), ':', '%3A'), ';', '%3B'), '<', '%3C'), '=', '%3D'), '>', '%3E'), '?', '%3F'), '@', '%40'), '[', '%5B'), '\\', '%5C'), ']', '%5D'), '^', '%5E'), '`', '%60'), '{', '%7B'), '|', '%7C'), '}', '%7D'), '\u007F', '%7F')), '__HIVE_DEFAULT_PARTITION__'))
FILE_FORMAT = (TYPE = JSON COMPRESSION = NONE)
INCLUDE_QUERY_ID = TRUE
DETAILED_OUTPUT = TRUE;
commit;

-- step: files
SELECT $1, $2, $3 FROM TABLE(RESULT_SCAN(LAST_QUERY_ID(-2)))

-- step: list
LIST '@analytics.exports.lake_stage/exports/it\'s here \\ ünï/'

-- step: manifest
begin;
COPY INTO '@analytics.exports.lake_stage/exports/it\'s here \\ ünï/_manifest.json'
FROM (SELECT PARSE_JSON($${"adapter": "snowflake", "compression": null, "created_at": "2024-05-01T12:00:00Z", "destination": "s3://lake.with.dots/exports/it's here \\ \u00fcn\u00ef/", "file_format": "jsonl", "files": [{"bytes": 10, "generation": "20240501T120000Z-0a1b2c3d", "key": "exports/it's here \\ \u00fcn\u00ef/name=x/ts=2024-01-01%2000%3A00%3A00/data_01ccccc0-0000-1111-0000-000012345678_0_0_0.json", "rows": 1}], "format_version": 1, "generation": "20240501T120000Z-0a1b2c3d", "mode": "replace", "model": "events", "partition_cols": ["name", "ts"], "query_ids": ["01ccccc0-0000-1111-0000-000012345678"]}$$))
FILE_FORMAT = (TYPE = JSON COMPRESSION = NONE)
SINGLE = TRUE
OVERWRITE = TRUE;
commit;

-- step: remove
REMOVE '@analytics.exports.lake_stage/exports/it\'s here \\ ünï/name=a\\b"c/ts=__HIVE_DEFAULT_PARTITION__/data_01aaaaaa-0000-1111-0000-000099999999_'

-- step: remove
REMOVE '@analytics.exports.lake_stage/exports/it\'s here \\ ünï/name=it\'s here/ts=2024-01-01 00:00:00.000/data_01aaaaaa-0000-1111-0000-000099999999_'

-- step: remove
REMOVE '@analytics.exports.lake_stage/exports/it\'s here \\ ünï/name=ünï côdé/ts=2024-01-01 00:00:00/data_01aaaaaa-0000-1111-0000-000099999999_'

-- case: jsonl_single_object
-- step: unload
begin;
COPY INTO 's3://lake/exports/events.jsonl'
STORAGE_INTEGRATION = s3_exports
FROM (SELECT OBJECT_CONSTRUCT_KEEP_NULL('id', "ID", 'name', "NAME", 'amount', "AMOUNT", 'day', "DAY") AS "S3_EXPORT_ROW" FROM analytics.exports.events)
FILE_FORMAT = (TYPE = JSON COMPRESSION = NONE)
SINGLE = TRUE
MAX_FILE_SIZE = 5368709120
OVERWRITE = TRUE;
commit;

-- case: parquet_single_error_if_exists
-- step: check
LIST '@lake_stage/exports/events.parquet'

-- step: unload
begin;
COPY INTO '@lake_stage/exports/events.parquet'
FROM (SELECT "ID" AS "id", "NAME" AS "name", "AMOUNT" AS "amount", "DAY" AS "day" FROM analytics.exports.events)
FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY)
HEADER = TRUE
SINGLE = TRUE
MAX_FILE_SIZE = 5368709120
OVERWRITE = TRUE;
commit;

-- case: parquet_stage_replace_partitioned
-- step: unload
begin;
COPY INTO '@analytics.exports.lake_stage/exports/events/'
FROM (SELECT "ID" AS "id", "NAME" AS "name", "AMOUNT" AS "amount", "DAY" AS "day" FROM analytics.exports.events WHERE (id > 0 and name <> 'x'))
PARTITION BY ('day=' || COALESCE(IFF(TO_VARCHAR("day", 'YYYY-MM-DD') = '__HIVE_DEFAULT_PARTITION__', '%5F%5FHIVE_DEFAULT_PARTITION%5F%5F', REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(TO_VARCHAR("day", 'YYYY-MM-DD'), '%', '%25'), '\u0000', '%00'), '\u0001', '%01'), '\u0002', '%02'), '\u0003', '%03'), '\u0004', '%04'), '\u0005', '%05'), '\u0006', '%06'), '\u0007', '%07'), '\u0008', '%08'), '\t', '%09'), '\n', '%0A'), '\u000B', '%0B'), '\u000C', '%0C'), '\r', '%0D'), '\u000E', '%0E'), '\u000F', '%0F'), '\u0010', '%10'), '\u0011', '%11'), '\u0012', '%12'), '\u0013', '%13'), '\u0014', '%14'), '\u0015', '%15'), '\u0016', '%16'), '\u0017', '%17'), '\u0018', '%18'), '\u0019', '%19'), '\u001A', '%1A'), '\u001B', '%1B'), '\u001C', '%1C'), '\u001D', '%1D'), '\u001E', '%1E'), '\u001F', '%1F'), ' ', '%20'), '!', '%21'), '"', '%22'), '#', '%23'), '$', '%24'), '&', '%26'), '\'', '%27'), '(', '%28'), ')', '%29'), '*', '%2A'), '+', '%2B'), ',', '%2C'), '/', '%2F'), ':', '%3A'), ';', '%3B'), '<', '%3C'), '=', '%3D'), '>', '%3E'), '?', '%3F'), '@', '%40'), '[', '%5B'), '\\', '%5C'), ']', '%5D'), '^', '%5E'), '`', '%60'), '{', '%7B'), '|', '%7C'), '}', '%7D'), '\u007F', '%7F')), '__HIVE_DEFAULT_PARTITION__'))
FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY)
HEADER = TRUE
MAX_FILE_SIZE = 67108864
INCLUDE_QUERY_ID = TRUE
DETAILED_OUTPUT = TRUE;
commit;

-- step: files
SELECT $1, $2, $3 FROM TABLE(RESULT_SCAN(LAST_QUERY_ID(-2)))

-- step: list
LIST '@analytics.exports.lake_stage/exports/events/'

-- step: manifest
begin;
COPY INTO '@analytics.exports.lake_stage/exports/events/_manifest.json'
FROM (SELECT PARSE_JSON($${"adapter": "snowflake", "compression": null, "created_at": "2024-05-01T12:00:00Z", "destination": "s3://lake/exports/events/", "file_format": "parquet", "files": [{"bytes": 900, "generation": "20240501T120000Z-0a1b2c3d", "key": "exports/events/day=2024-01-01/data_01b2c3d4-0000-1111-0000-000012345678_0_0_0.snappy.parquet", "rows": 3}, {"bytes": 800, "generation": "20240501T120000Z-0a1b2c3d", "key": "exports/events/day=2024-01-02/data_01b2c3d4-0000-1111-0000-000012345678_0_0_0.snappy.parquet", "rows": 2}], "format_version": 1, "generation": "20240501T120000Z-0a1b2c3d", "mode": "replace", "model": "events", "partition_cols": ["day"], "query_ids": ["01b2c3d4-0000-1111-0000-000012345678"]}$$))
FILE_FORMAT = (TYPE = JSON COMPRESSION = NONE)
SINGLE = TRUE
OVERWRITE = TRUE;
commit;

-- step: remove
REMOVE '@analytics.exports.lake_stage/exports/events/day=2023-12-31/data_01aaaaaa-0000-1111-0000-000099999999_'

-- step: remove
REMOVE '@analytics.exports.lake_stage/exports/events/day=2024-01-01/data_01aaaaaa-0000-1111-0000-000099999999_'
