-- Individual employee answers leave the dashboards' database (docs/privacy.md): they
-- live in a database of their own, readable by the cxlink writer only, and the
-- dashboards' database keeps aggregates. Every valid pulse is written here at once; the
-- analytics stage publishes team figures from it into team_periods, per closed period,
-- by the disclosure policy. stored_at is when the row reached ClickHouse (the server's
-- clock): the stage re-reads only the groups with rows stored since its last run.
CREATE DATABASE IF NOT EXISTS cxlink_private;

CREATE TABLE IF NOT EXISTS cxlink_private.employee_pulses
(
    id String,
    employee_id String,
    team String,
    question String,
    occurred_at DateTime('UTC'),
    received_at DateTime('UTC'),
    source String,
    score Float64,
    scale_min Float64,
    scale_max Float64,
    late UInt8,
    partition UInt16,
    seq UInt64,
    version UInt64,
    stored_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (team, id);

-- Move the rows of the old table, then drop it. Idempotent: the old table is created
-- (empty) again if an interrupted run already dropped it, so that the copy always has a
-- source; a row copied twice keeps its version and is read once with FINAL.
CREATE TABLE IF NOT EXISTS cxlink.employee_pulses
(
    id String,
    employee_id String,
    team String,
    question String,
    occurred_at DateTime('UTC'),
    received_at DateTime('UTC'),
    source String,
    score Float64,
    scale_min Float64,
    scale_max Float64,
    late UInt8,
    partition UInt16,
    seq UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (team, id);

INSERT INTO cxlink_private.employee_pulses (id, employee_id, team, question, occurred_at, received_at, source, score, scale_min, scale_max, late, partition, seq, version)
SELECT id, employee_id, team, question, occurred_at, received_at, source, score, scale_min, scale_max, late, partition, seq, version
FROM cxlink.employee_pulses FINAL;

DROP TABLE IF EXISTS cxlink.employee_pulses;

-- The published spread of a team's answers, next to their mean: engagement_sd is the
-- sample standard deviation of the answers (1-5), enps_promoters and enps_detractors the
-- percentages of answers 9-10 and 0-6. Like the means they change only when the
-- disclosure policy publishes the group again; the drift detector judges them.
ALTER TABLE cxlink.team_periods ADD COLUMN engagement_sd Nullable(Float64) AFTER engagement;
ALTER TABLE cxlink.team_periods ADD COLUMN enps_promoters Nullable(Float64) AFTER enps;
ALTER TABLE cxlink.team_periods ADD COLUMN enps_detractors Nullable(Float64) AFTER enps_promoters;
