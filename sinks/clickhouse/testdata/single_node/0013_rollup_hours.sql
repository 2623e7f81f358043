-- Hourly compaction of the rollup buckets (docs/storage.md, "Hourly compaction"): one
-- row per series (survey, dimension, key) and hour, the sums of that hour's buckets over
-- every partition, once no message can change them any more. version is the highest
-- version of the buckets it adds up, so compacting an hour again writes the same row.
-- Read with FINAL. Sorted as rollup_buckets, but partitioned by month: a series has 24
-- rows a day, so a day's part would make every read under FINAL take a whole granule
-- (8192 rows) per day; a month keeps a series' hours together. Retention drops months.
CREATE TABLE IF NOT EXISTS cxlink.rollup_hours
(
    survey String,
    dimension String,
    key String,
    hour_start DateTime('UTC'),
    responses UInt64,
    score_sum Float64,
    score_sq_sum Float64,
    positive UInt64,
    negative UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour_start)
ORDER BY (survey, dimension, hour_start, key);

-- How far rollup_hours is complete: every hour before max(compacted_until) is in it and
-- final. version is compacted_until in seconds, so the rows replace each other.
CREATE TABLE IF NOT EXISTS cxlink.rollup_hours_done
(
    compacted_until DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY tuple();
