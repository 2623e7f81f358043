-- Rollup buckets (docs/storage.md): one partition's sums of one series (survey,
-- dimension, key) over one rollup step starting at bucket_start. A rolling window is the
-- sum of the buckets it covers, the partitions added up. A bucket row is written when an
-- event changes it and written again, with a higher version, when a later one does:
-- version is the stream sequence of the last message that changed it. Read with FINAL.
-- Partitioned by day, so that retention drops whole days.
CREATE TABLE IF NOT EXISTS cxlink.rollup_buckets
(
    survey String,
    dimension String,
    key String,
    bucket_start DateTime('UTC'),
    partition UInt16,
    responses UInt64,
    score_sum Float64,
    score_sq_sum Float64,
    positive UInt64,
    negative UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(bucket_start)
ORDER BY (survey, dimension, bucket_start, key, partition);

-- The rolling windows (CXLINK_WINDOWS) and the step, as the processors run them: they
-- write their configuration here at start, and the view rollups reads it.
CREATE TABLE IF NOT EXISTS cxlink.rollup_windows
(
    `window` String,
    seconds UInt32,
    step_seconds UInt32,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY `window`;

-- rollups is now the current value of every window (window_end = now, rounded down to
-- the step), computed from the buckets of the longest window only: it filters by time
-- inside, so it costs the same after a year as after a week. Rolling windows over time:
-- the query in docs/storage.md. The inner filter takes the longest window's buckets
-- before the join (18.16 pushes no predicate into a view or across a join).
DROP TABLE IF EXISTS cxlink.rollups;

CREATE VIEW IF NOT EXISTS cxlink.rollups AS
SELECT
    survey,
    `window`,
    dimension,
    key,
    window_end,
    n AS responses,
    s / nullIf(n, 0) AS mean,
    100 * pos / nullIf(n, 0) AS pct_positive,
    100 * neg / nullIf(n, 0) AS pct_negative,
    if(survey = 'ces', 100 * pos / nullIf(n, 0), NULL) AS pct_easy,
    if(survey = 'ces', 100 * neg / nullIf(n, 0), NULL) AS pct_difficult,
    if(survey = 'csat', 100 * pos / nullIf(n, 0), NULL) AS pct_satisfied,
    if(survey = 'nps', 100 * (toInt64(pos) - toInt64(neg)) / nullIf(n, 0), NULL) AS nps
FROM
(
    SELECT
        survey,
        w.`window` AS `window`,
        dimension,
        key,
        w.window_end AS window_end,
        sum(responses) AS n,
        sum(score_sum) AS s,
        sum(positive) AS pos,
        sum(negative) AS neg
    FROM
    (
        SELECT survey, dimension, key, bucket_start, responses, score_sum, positive, negative
        FROM cxlink.rollup_buckets FINAL
        WHERE bucket_start >= now() - (SELECT max(seconds) + max(step_seconds) FROM cxlink.rollup_windows FINAL)
    )
    CROSS JOIN
    (
        SELECT `window`, seconds, toDateTime(intDiv(toUInt32(now()), step_seconds) * step_seconds, 'UTC') AS window_end
        FROM cxlink.rollup_windows FINAL
    ) AS w
    WHERE bucket_start >= w.window_end - w.seconds AND bucket_start < w.window_end
    GROUP BY survey, `window`, dimension, key, window_end
);

-- History: the buckets of the on-time surveys already stored, so that charts over past
-- days do not start empty after the upgrade. Assumes the default one-minute step.
-- Re-running it writes the same rows with the same versions (read once under FINAL).
INSERT INTO cxlink.rollup_buckets
SELECT
    survey,
    tupleElement(d, 1) AS dimension,
    tupleElement(d, 2) AS key,
    toDateTime(intDiv(toUInt32(occurred_at), 60) * 60, 'UTC') AS bucket_start,
    partition,
    count() AS responses,
    sum(toInt64(round(standard_score * 1000000))) / 1000000 AS score_sum,
    sum(toInt64(round(standard_score * standard_score * 1000000))) / 1000000 AS score_sq_sum,
    sum(multiIf(survey = 'ces', standard_score >= 5, survey = 'csat', standard_score >= 4, standard_score >= 9)) AS positive,
    sum(multiIf(survey = 'ces', standard_score <= 3, survey = 'csat', standard_score <= 2, standard_score <= 6)) AS negative,
    max(seq) AS version
FROM
(
    SELECT survey, occurred_at, partition, standard_score, seq,
        arrayJoin(arrayFilter(x -> tupleElement(x, 1) = 'overall' OR tupleElement(x, 2) != '',
            [('overall', ''), ('category', category), ('channel', channel), ('team', team), ('agent', agent_id)])) AS d
    FROM cxlink.survey_responses FINAL
    WHERE late = 0
)
GROUP BY survey, dimension, key, bucket_start, partition;
