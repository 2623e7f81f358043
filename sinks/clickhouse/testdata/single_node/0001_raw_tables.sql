-- Raw tables: one row per stored event, written as the processors see it. A
-- redelivered message writes its row again and a survey attributed late is written
-- again with a higher version, so read them with FINAL (or argMax(..., version)):
-- ReplacingMergeTree keeps the row with the highest version of each sorting key, but
-- only once parts are merged, and only within a month partition.
-- Times are UTC seconds. late = 1 marks an event that arrived after the allowed
-- lateness: stored here, but in no rollup. partition and seq locate the message in
-- the stream, version is records.Version(seq, revision).

-- One survey response (CES, CSAT or NPS). score and its scale are as sent;
-- standard_score is on the survey's standard scale (ces 1-7, csat 1-5, nps 0-10).
-- attributed = 1 when channel, category, team or agent came from the ticket.
CREATE TABLE IF NOT EXISTS cxlink.survey_responses
(
    id String,
    survey String,
    occurred_at DateTime('UTC'),
    received_at DateTime('UTC'),
    source String,
    score Float64,
    scale_min Float64,
    scale_max Float64,
    standard_score Float64,
    ticket_id String,
    customer_id String,
    channel String,
    category String,
    team String,
    agent_id String,
    comment String,
    attributed UInt8,
    late UInt8,
    partition UInt16,
    seq UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (survey, id);

-- One ticket event (created, solved, reopened): a ticket has one row per event id,
-- its latest state is the row with the greatest occurred_at of its ticket_id.
-- handle_seconds and contacts are NULL when the event did not say.
CREATE TABLE IF NOT EXISTS cxlink.tickets
(
    id String,
    ticket_id String,
    status String,
    occurred_at DateTime('UTC'),
    received_at DateTime('UTC'),
    source String,
    channel String,
    category String,
    team String,
    agent_id String,
    handle_seconds Nullable(Float64),
    contacts Nullable(UInt32),
    late UInt8,
    partition UInt16,
    seq UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (ticket_id, id);

-- One answer of one employee to one pulse question (engagement, enps, workload...),
-- on the scale it was sent with.
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
