-- case: hostile
-- step: create_scratch
CREATE TABLE exports.events__s3_export_20240501t120000z_0a1b2c3d (`select` varchar, `it's "x"` varchar, `flag` boolean, `name` varchar, `day` date)
USING csv
LOCATION 's3://lake.with.dots/exports/it\'s here \\ ünï/'
OPTIONS ('compression' = 'none', 'header' = 'true', 'sep' = '\'')

-- step: unload
INSERT OVERWRITE TABLE exports.events__s3_export_20240501t120000z_0a1b2c3d
SELECT `select`, `it's "x"`, `flag`, `name`, `day` FROM exports.events WHERE (`select` <> 'it\'s' and name <> 'C:\\dir\\')

-- step: drop_scratch
DROP TABLE IF EXISTS exports.events__s3_export_20240501t120000z_0a1b2c3d

-- case: jsonl_gzip_s3a
-- step: create_scratch
CREATE TABLE exports.events__s3_export_20240501t120000z_0a1b2c3d (`id` int, `name` string, `amount` decimal(10,2), `day` date)
USING json
LOCATION 's3a://lake/exports/events/'
OPTIONS ('compression' = 'gzip', 'ignoreNullFields' = 'false')

-- step: unload
INSERT OVERWRITE TABLE exports.events__s3_export_20240501t120000z_0a1b2c3d
SELECT `id`, `name`, `amount`, `day` FROM exports.events WHERE (name <> 'it''s')

-- step: drop_scratch
DROP TABLE IF EXISTS exports.events__s3_export_20240501t120000z_0a1b2c3d
