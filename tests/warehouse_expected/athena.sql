-- case: hostile
-- step: unload
UNLOAD (SELECT "select", "it's ""x""", "flag", "name", "day" FROM "analytics"."exports"."events" WHERE ("select" <> 'it''s' and name <> 'C:\dir\'))
TO 's3://lake.with.dots/exports/it''s here \ ünï/20240501T120000Z-0a1b2c3d/'
WITH (format = 'PARQUET', compression = 'SNAPPY', partitioned_by = ARRAY['day'])

-- case: jsonl_zstd_append
-- step: unload
UNLOAD (SELECT "id", "name", "amount", "day" FROM "analytics"."exports"."events")
TO 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/'
WITH (format = 'JSON', compression = 'ZSTD')

-- case: parquet_partitioned
-- step: unload
UNLOAD (SELECT "id", "name", "amount", "day" FROM "analytics"."exports"."events" WHERE (name <> 'x'))
TO 's3://lake/exports/events/20240501T120000Z-0a1b2c3d/'
WITH (format = 'PARQUET', compression = 'SNAPPY', partitioned_by = ARRAY['day'])
