-- One stream partition's share of one rolling window at one tick: the responses with
-- window_end - `window` <= occurred_at < window_end that this partition saw. A tick
-- updated by a late event is written again with a higher version, so read with FINAL.
-- Dashboards read the view rollups below, not this table.
CREATE TABLE IF NOT EXISTS {{table "rollup_partials"}}
(
    survey String,
    `window` String,
    dimension String,
    key String,
    window_end DateTime('UTC'),
    partition UInt16,
    responses UInt64,
    score_sum Float64,
    positive UInt64,
    negative UInt64,
    version UInt64
)
ENGINE = {{engine "rollup_partials" "ReplacingMergeTree(version)"}}
PARTITION BY toYYYYMMDD(window_end)
ORDER BY (survey, `window`, dimension, key, window_end, partition){{distributed "rollup_partials"}};

-- One rolling window at one tick: survey (ces, csat, nps), `window` (1h, 24h, 7d),
-- dimension (overall, category, channel, team, agent) and key ('' for overall), the
-- partitions' partials added up. mean is on the survey's standard scale, the pct_
-- columns are percentages 0-100 of the responses, nps runs from -100 to 100. Columns
-- that do not apply to the survey are NULL, and so is every ratio of a window without
-- responses. Sums are aggregated under other names and renamed outside: reusing the
-- column name as alias would make ClickHouse nest the aggregates.
CREATE VIEW IF NOT EXISTS {{.Database}}.rollups{{onCluster}} AS
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
        `window`,
        dimension,
        key,
        window_end,
        sum(responses) AS n,
        sum(score_sum) AS s,
        sum(positive) AS pos,
        sum(negative) AS neg
    FROM {{.Database}}.rollup_partials FINAL
    GROUP BY survey, `window`, dimension, key, window_end
);
