-- case: csv_default_role
-- step: commit_model
COMMIT

-- step: unload
UNLOAD ('SELECT "id", "name", "amount", "day" FROM "analytics"."exports"."events"')
TO 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/'
IAM_ROLE default
FORMAT AS CSV
HEADER
DELIMITER AS '|'
GZIP
MANIFEST VERBOSE

-- case: hostile
-- step: commit_model
COMMIT

-- step: unload
UNLOAD ('SELECT "select", "it''s ""x""", JSON_PARSE(CASE WHEN "flag" THEN ''true'' WHEN NOT "flag" THEN ''false'' END) AS "flag", "name", "day" FROM "analytics"."exports"."events" WHERE ("select" <> ''it''''s'' and name <> ''C:\\\\dir\\\\'')')
TO 's3://lake.with.dots/exports/it''s here \\ ünï/'
IAM_ROLE default
FORMAT AS JSON
EXTENSION 'json'
CLEANPATH
MANIFEST VERBOSE

-- case: jsonl_keys_in_sql
-- step: commit_model
COMMIT

-- step: unload
UNLOAD ('SELECT "id", "name", "amount", "day" FROM "analytics"."exports"."events"')
TO 's3://lake/exports/events/'
ACCESS_KEY_ID '***' SECRET_ACCESS_KEY '***' SESSION_TOKEN '***'
FORMAT AS JSON
EXTENSION 'json'
CLEANPATH
MANIFEST VERBOSE

-- case: parquet_overwrite_partitions
-- step: commit_model
COMMIT

-- step: unload
UNLOAD ('SELECT "id", "name", "amount", "day" FROM "analytics"."exports"."events" WHERE (name <> ''x'')')
TO 's3://lake/exports/events/'
IAM_ROLE 'arn:aws:iam::123456789012:role/unload'
FORMAT AS PARQUET
PARTITION BY ("day") INCLUDE
MAXFILESIZE AS 256 MB
REGION AS 'eu-west-1'
CLEANPATH
