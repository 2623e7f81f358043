-- Follow-up cases (docs/followups.md): one row per change of a case (opened,
-- acknowledged, closed), the whole case each time, versioned by the change's sequence in
-- the follow-up stream; FINAL shows where each case stands. Partitioned by the month it
-- opened, which every change of a case shares.
CREATE TABLE IF NOT EXISTS {{table "followups"}}
(
    id String,
    state String,
    owner String,
    rule String,
    opened_at DateTime('UTC'),
    due_at DateTime('UTC'),
    acknowledged_at Nullable(DateTime('UTC')),
    acknowledged_by String,
    closed_at Nullable(DateTime('UTC')),
    closed_by String,
    close_reason String,
    close_note String,
    survey_id String,
    survey String,
    score Float64,
    scale_min Float64,
    scale_max Float64,
    standard_score Float64,
    occurred_at DateTime('UTC'),
    ticket_id String,
    customer_id String,
    channel String,
    category String,
    team String,
    agent_id String,
    comment String,
    partition UInt16,
    seq UInt64,
    version UInt64
)
ENGINE = {{engine "followups" "ReplacingMergeTree(version)"}}
PARTITION BY toYYYYMM(opened_at)
ORDER BY id{{distributed "followups"}};
