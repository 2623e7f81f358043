-- Event ids are unique within their source only (docs/guarantees.md, "Ids and
-- sources"): the raw tables keep one row per (source, id) under FINAL, so that one
-- source's event can never replace another's with the same id. The sorting key gains
-- the source; ClickHouse cannot change a sorting key in place, so each table is
-- rebuilt: a new table with the new key takes the old one's name (writers go on
-- writing into it at once), the old rows are copied into it with their versions, and
-- the old table is dropped. Every row keeps its source, id, occurred_at and version, so
-- a row written again by a redelivered message, before or after the copy, is read once.
-- Interrupted anywhere, the version runs again from its start: a rename whose tables
-- are already renamed counts as done, a copy from a table already dropped too, and a
-- second copy is read once.

CREATE TABLE IF NOT EXISTS {{.Database}}.survey_responses_by_source
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
ORDER BY (survey, id, source);

RENAME TABLE {{.Database}}.survey_responses TO {{.Database}}.survey_responses_before_0011, {{.Database}}.survey_responses_by_source TO {{.Database}}.survey_responses;

INSERT INTO {{.Database}}.survey_responses (id, survey, occurred_at, received_at, source, score, scale_min, scale_max, standard_score, ticket_id, customer_id, channel, category, team, agent_id, comment, attributed, late, partition, seq, version)
SELECT id, survey, occurred_at, received_at, source, score, scale_min, scale_max, standard_score, ticket_id, customer_id, channel, category, team, agent_id, comment, attributed, late, partition, seq, version
FROM {{.Database}}.survey_responses_before_0011 FINAL;

DROP TABLE IF EXISTS {{.Database}}.survey_responses_before_0011;

DROP TABLE IF EXISTS {{.Database}}.survey_responses_by_source;

CREATE TABLE IF NOT EXISTS {{.Database}}.tickets_by_source
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
ORDER BY (ticket_id, id, source);

RENAME TABLE {{.Database}}.tickets TO {{.Database}}.tickets_before_0011, {{.Database}}.tickets_by_source TO {{.Database}}.tickets;

INSERT INTO {{.Database}}.tickets (id, ticket_id, status, occurred_at, received_at, source, channel, category, team, agent_id, handle_seconds, contacts, late, partition, seq, version)
SELECT id, ticket_id, status, occurred_at, received_at, source, channel, category, team, agent_id, handle_seconds, contacts, late, partition, seq, version
FROM {{.Database}}.tickets_before_0011 FINAL;

DROP TABLE IF EXISTS {{.Database}}.tickets_before_0011;

DROP TABLE IF EXISTS {{.Database}}.tickets_by_source;

CREATE TABLE IF NOT EXISTS {{.PrivateDatabase}}.employee_pulses_by_source
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
ORDER BY (team, id, source);

RENAME TABLE {{.PrivateDatabase}}.employee_pulses TO {{.PrivateDatabase}}.employee_pulses_before_0011, {{.PrivateDatabase}}.employee_pulses_by_source TO {{.PrivateDatabase}}.employee_pulses;

INSERT INTO {{.PrivateDatabase}}.employee_pulses (id, employee_id, team, question, occurred_at, received_at, source, score, scale_min, scale_max, late, partition, seq, version, stored_at)
SELECT id, employee_id, team, question, occurred_at, received_at, source, score, scale_min, scale_max, late, partition, seq, version, stored_at
FROM {{.PrivateDatabase}}.employee_pulses_before_0011 FINAL;

DROP TABLE IF EXISTS {{.PrivateDatabase}}.employee_pulses_before_0011;

DROP TABLE IF EXISTS {{.PrivateDatabase}}.employee_pulses_by_source;
