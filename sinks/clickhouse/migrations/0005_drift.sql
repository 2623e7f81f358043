-- Drift detection (processors/drift).
--
-- score_sq_sum: the partition's sum of squared standard scores in the window, each square
-- rounded to 1e-6, so that a window's variance is (score_sq_sum - score_sum^2 / n) / (n - 1)
-- once the partitions are added up. Rows written before this version hold 0: a window
-- whose variance comes out negative has no squares yet and is left out of the mean test.
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: the migration runner treats "column
-- already exists" from an ADD COLUMN as done, so a re-run of this version is harmless.
ALTER TABLE {{table "rollup_partials"}} ADD COLUMN score_sq_sum Float64 DEFAULT 0 AFTER negative{{redistribute "rollup_partials"}};

-- One drift episode of one series: from the evaluation at which a detector first crossed
-- its threshold (started_at) to the one at which it came back inside its clearing
-- threshold (ended_at; NULL while it lasts). detector is 'mean' (Welch z of the recent
-- window's mean against the baseline), 'negative_share' (two-proportion z of the share
-- of negative answers: CES % difficult, CSAT % dissatisfied, NPS % detractors) or
-- 'cusum' (CUSUM of the z of consecutive recent windows, for slow drifts). direction is
-- 'worse' or 'better' for the customers. peak_* describe the evaluation with the most
-- extreme statistic: peak_statistic is the z (or CUSUM) there, peak_recent and
-- peak_baseline the compared values (mean on the standard scale, or a share in percent),
-- with their response counts; recent_span and baseline_span name the compared windows
-- ('1h', '7d'). The row is rewritten as the episode grows and ends, with
-- a higher version: read with FINAL.
CREATE TABLE IF NOT EXISTS {{table "drift_events"}}
(
    survey String,
    dimension String,
    key String,
    owner String,
    detector String,
    direction String,
    started_at DateTime('UTC'),
    ended_at Nullable(DateTime('UTC')),
    peak_at DateTime('UTC'),
    peak_statistic Float64,
    peak_recent Float64,
    peak_baseline Float64,
    peak_recent_responses UInt64,
    peak_baseline_responses UInt64,
    recent_span String,
    baseline_span String,
    version UInt64
)
ENGINE = {{engine "drift_events" "ReplacingMergeTree(version)"}}
PARTITION BY toYYYYMM(started_at)
ORDER BY (survey, dimension, key, detector, direction, started_at){{distributed "drift_events"}};
