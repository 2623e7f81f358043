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
-- second copy is read once. On a cluster the local tables are swapped on every node
-- (the Distributed table over <table>_local then reads the new one), and the old rows
-- are copied through a Distributed table over the old local tables, with the same
-- sharding key, so that every copy of a row lands on its shard.

CREATE TABLE IF NOT EXISTS {{table "survey_responses_by_source"}}
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
ENGINE = {{engine "survey_responses_by_source" "ReplacingMergeTree(version)"}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (survey, id, source);

{{swap "survey_responses" "survey_responses_before_0011" "survey_responses_by_source"}}{{distributed "survey_responses_before_0011"}};

INSERT INTO {{.Database}}.survey_responses (id, survey, occurred_at, received_at, source, score, scale_min, scale_max, standard_score, ticket_id, customer_id, channel, category, team, agent_id, comment, attributed, late, partition, seq, version)
SELECT id, survey, occurred_at, received_at, source, score, scale_min, scale_max, standard_score, ticket_id, customer_id, channel, category, team, agent_id, comment, attributed, late, partition, seq, version
FROM {{.Database}}.survey_responses_before_0011 FINAL;

{{drop "survey_responses_before_0011"}};

{{drop "survey_responses_by_source"}};

CREATE TABLE IF NOT EXISTS {{table "tickets_by_source"}}
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
ENGINE = {{engine "tickets_by_source" "ReplacingMergeTree(version)"}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (ticket_id, id, source);

{{swap "tickets" "tickets_before_0011" "tickets_by_source"}}{{distributed "tickets_before_0011"}};

INSERT INTO {{.Database}}.tickets (id, ticket_id, status, occurred_at, received_at, source, channel, category, team, agent_id, handle_seconds, contacts, late, partition, seq, version)
SELECT id, ticket_id, status, occurred_at, received_at, source, channel, category, team, agent_id, handle_seconds, contacts, late, partition, seq, version
FROM {{.Database}}.tickets_before_0011 FINAL;

{{drop "tickets_before_0011"}};

{{drop "tickets_by_source"}};

CREATE TABLE IF NOT EXISTS {{table "employee_pulses_by_source" .PrivateDatabase}}
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
ENGINE = {{engine "employee_pulses_by_source" "ReplacingMergeTree(version)" .PrivateDatabase}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (team, id, source);

{{swap "employee_pulses" "employee_pulses_before_0011" "employee_pulses_by_source" .PrivateDatabase}}{{distributed "employee_pulses_before_0011" .PrivateDatabase}};

INSERT INTO {{.PrivateDatabase}}.employee_pulses (id, employee_id, team, question, occurred_at, received_at, source, score, scale_min, scale_max, late, partition, seq, version, stored_at)
SELECT id, employee_id, team, question, occurred_at, received_at, source, score, scale_min, scale_max, late, partition, seq, version, stored_at
FROM {{.PrivateDatabase}}.employee_pulses_before_0011 FINAL;

{{drop "employee_pulses_before_0011" .PrivateDatabase}};

{{drop "employee_pulses_by_source" .PrivateDatabase}};
