-- case: csv_default_role
-- step: commit_model
COMMIT

-- step: unload
UNLOAD ('SELECT * FROM "analytics"."exports"."events"')
TO 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/'
IAM_ROLE default
FORMAT AS CSV
HEADER
DELIMITER AS '|'
GZIP
MANIFEST VERBOSE

-- case: jsonl_keys_in_sql
-- step: commit_model
COMMIT

-- step: unload
UNLOAD ('SELECT * FROM "analytics"."exports"."events"')
TO 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/'
ACCESS_KEY_ID '***' SECRET_ACCESS_KEY '***' SESSION_TOKEN '***'
FORMAT AS JSON
EXTENSION 'json'
MANIFEST VERBOSE

-- case: parquet_partitioned
-- step: commit_model
COMMIT

-- step: unload
UNLOAD ('SELECT * FROM "analytics"."exports"."events" WHERE (name <> ''x'')')
TO 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/'
IAM_ROLE 'arn:aws:iam::123456789012:role/unload'
FORMAT AS PARQUET
PARTITION BY ("day") INCLUDE
MAXFILESIZE AS 256 MB
REGION AS 'eu-west-1'
MANIFEST VERBOSE
