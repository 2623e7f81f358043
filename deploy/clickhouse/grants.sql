-- cxlink's ClickHouse users on current ClickHouse, with SQL access control (run as an
-- administrator; docs/privacy.md). ClickHouse 18.16 has no GRANT: use
-- users.d/cxlink.xml there. Replace the passwords. If you renamed the databases
-- (CLICKHOUSE_DATABASE, CLICKHOUSE_PRIVATE_DATABASE), rename them here.

-- The writer of every cxlink role: creates and migrates both databases, writes the raw
-- events, the aggregates and the individual employee answers, reads them back.
CREATE USER IF NOT EXISTS cxlink IDENTIFIED WITH sha256_password BY 'change-me';
GRANT CREATE DATABASE ON cxlink.* TO cxlink;
GRANT CREATE DATABASE ON cxlink_private.* TO cxlink;
GRANT SELECT, INSERT, ALTER, CREATE TABLE, CREATE VIEW, DROP TABLE, DROP VIEW ON cxlink.* TO cxlink;
GRANT SELECT, INSERT, ALTER, CREATE TABLE, DROP TABLE ON cxlink_private.* TO cxlink;

-- Grafana's datasource: reads the dashboards' database, nothing else. readonly = 2
-- still lets it set max_execution_time, which the datasource sends with each query.
CREATE SETTINGS PROFILE IF NOT EXISTS cxlink_readonly SETTINGS readonly = 2;
CREATE USER IF NOT EXISTS grafana IDENTIFIED WITH sha256_password BY 'change-me' SETTINGS PROFILE cxlink_readonly;
GRANT SELECT ON cxlink.* TO grafana;

-- Nobody else reads cxlink_private: check with
--   SHOW GRANTS FOR ALL  (or: SELECT * FROM system.grants WHERE database = 'cxlink_private')
