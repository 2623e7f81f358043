-- Effort impact per issue category over a rolling window ('7d', '30d') ending at
-- window_end, written by the effort-impact stage (processors/analytics) at every run;
-- read with FINAL, and the latest window_end for the current ranking. Definitions in
-- docs/metrics.md: tickets solved in the window and their share of all solved tickets
-- (volume_share) and their handle hours' share of all (handle_share), handle time per
-- solved ticket, contacts per resolution, the CES mean with its t interval, % difficult
-- with its Wilson interval (95%), and impact, the ranking score.
-- impact and impact_rank are NULL when status is not 'ok' (e.g. 'too_few_responses').
CREATE TABLE IF NOT EXISTS cxlink.effort_impact
(
    `window` String,
    window_end DateTime('UTC'),
    category String,
    tickets UInt64,
    volume_share Float64,
    handle_share Nullable(Float64),
    handle_hours Float64,
    avg_handle_seconds Nullable(Float64),
    contacts_per_resolution Nullable(Float64),
    ces_responses UInt64,
    ces Nullable(Float64),
    ces_ci_low Nullable(Float64),
    ces_ci_high Nullable(Float64),
    pct_difficult Nullable(Float64),
    pct_difficult_low Nullable(Float64),
    pct_difficult_high Nullable(Float64),
    impact Nullable(Float64),
    impact_rank Nullable(UInt16),
    status String,
    computed_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_end)
ORDER BY (`window`, window_end, category);
