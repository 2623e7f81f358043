-- Daily totals of the raw tables (docs/storage.md, "Daily totals of the raw tables"), for
-- the panels that answer from raw events over ranges of weeks: one row per survey,
-- category and UTC day of occurred_at (late and imported answers included), and per
-- category and day of the solved ticket events. The compaction adds a day up again from
-- the raw tables under FINAL whenever raw_days_changed names it; version is the run's
-- start in milliseconds, so a later run's totals replace an earlier one's. Read with
-- FINAL. Partitioned by month, kept as long as the raw tables.
CREATE TABLE IF NOT EXISTS {{table "survey_days"}}
(
    survey String,
    category String,
    day_start DateTime('UTC'),
    responses UInt64,
    score_sum Float64,
    score_sq_sum Float64,
    positive UInt64,
    negative UInt64,
    late UInt64,
    version UInt64
)
ENGINE = {{engine "survey_days" "ReplacingMergeTree(version)"}}
PARTITION BY toYYYYMM(day_start)
ORDER BY (survey, day_start, category){{distributed "survey_days"}};

CREATE TABLE IF NOT EXISTS {{table "ticket_days"}}
(
    category String,
    day_start DateTime('UTC'),
    solved UInt64,
    handle_count UInt64,
    handle_seconds_sum Float64,
    version UInt64
)
ENGINE = {{engine "ticket_days" "ReplacingMergeTree(version)"}}
PARTITION BY toYYYYMM(day_start)
ORDER BY (day_start, category){{distributed "ticket_days"}};

-- The days whose raw rows changed: the sink inserts one row per UTC day a stored batch's
-- survey and ticket rows occurred on, after storing them; changed_at is the server's
-- clock at the insert. The compaction reads the rows of the whole minutes since its last
-- run, so the rows of one day and minute merge into one: a day changed all day long
-- keeps 1,440 rows, however many batches wrote it.
CREATE TABLE IF NOT EXISTS {{table "raw_days_changed"}}
(
    day_start DateTime('UTC'),
    changed_at DateTime('UTC') DEFAULT now()
)
ENGINE = {{engine "raw_days_changed" "ReplacingMergeTree"}}
PARTITION BY toYYYYMM(changed_at)
ORDER BY (toStartOfMinute(changed_at), day_start){{distributed "raw_days_changed"}};

-- How far the compaction has read raw_days_changed: max(done_until), the server's clock
-- at the start of the last complete run. version is done_until in seconds.
CREATE TABLE IF NOT EXISTS {{table "raw_days_done"}}
(
    done_until DateTime('UTC'),
    version UInt64
)
ENGINE = {{engine "raw_days_done" "ReplacingMergeTree(version)"}}
ORDER BY tuple(){{distributed "raw_days_done"}};
