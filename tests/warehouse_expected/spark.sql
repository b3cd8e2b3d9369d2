-- case: jsonl_gzip_s3a
-- step: drop_scratch
DROP TABLE IF EXISTS exports.events__s3_export

-- step: create_scratch
CREATE TABLE exports.events__s3_export (`id` int, `name` string, `amount` decimal(10,2), `day` date)
USING json
LOCATION 's3a://lake/exports/events/'
OPTIONS ('compression' = 'gzip', 'ignoreNullFields' = 'false')

-- step: unload
INSERT OVERWRITE TABLE exports.events__s3_export
SELECT `id`, `name`, `amount`, `day` FROM exports.events WHERE (name <> 'it''s')

-- step: drop_scratch
DROP TABLE IF EXISTS exports.events__s3_export
