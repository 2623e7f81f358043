-- EX-CX linkage, written by the linkage stage (processors/analytics) from the released
-- employee pulses and the customer surveys. Every run rewrites its rows with a higher
-- version: read with FINAL. period is the pulse period as configured ('7d', '10m').

-- One team in one period: its employee aggregates (only questions whose answers reached
-- the anonymity threshold; teams with none are absent) next to the customer scores of the
-- contacts it handled in the same period. Draw it as a scatter. engagement is the mean
-- answer on 1-5, enps is eNPS (-100 to 100), ces the CES mean (1-7), pct_difficult and
-- csat (% satisfied) percentages; NULL where the period has no answers of that kind.
CREATE TABLE IF NOT EXISTS cxlink.team_periods
(
    period String,
    period_start DateTime('UTC'),
    team String,
    engagement_respondents UInt32,
    engagement Nullable(Float64),
    enps_respondents UInt32,
    enps Nullable(Float64),
    ces_responses UInt32,
    ces Nullable(Float64),
    pct_difficult Nullable(Float64),
    csat_responses UInt32,
    csat Nullable(Float64),
    computed_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(period_start)
ORDER BY (period, period_start, team);

-- One correlation across teams between an employee metric in period t and a customer
-- metric in period t + lag. scope 'period': the teams of one employee period t
-- (period_start = t). scope 'pooled': the team-periods of span_periods employee periods
-- ending with period_start, each centred on its period's means. teams counts distinct
-- teams, pairs the (team, period) pairs correlated. The coefficients are NULL unless
-- status = 'ok' ('too_few_teams', 'no_variance').
CREATE TABLE IF NOT EXISTS cxlink.linkage
(
    period String,
    period_start DateTime('UTC'),
    scope String,
    span_periods UInt16,
    lag UInt8,
    employee_metric String,
    customer_metric String,
    teams UInt32,
    pairs UInt32,
    periods UInt16,
    pearson_r Nullable(Float64),
    spearman_r Nullable(Float64),
    ci_low Nullable(Float64),
    ci_high Nullable(Float64),
    p_value Nullable(Float64),
    status String,
    computed_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(period_start)
ORDER BY (period, scope, employee_metric, customer_metric, lag, period_start);
