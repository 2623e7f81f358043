-- EX-CX linkage between teams and within teams (issue 17).
--
-- The linkage stage writes three scopes from this version on: 'period' (as before),
-- 'between_teams' (one pair per team: its means over span_periods periods ending with
-- period_start, n = teams) and 'within_teams' (repeated-measures correlation: every
-- team-period of the span, less its team's and its period's level). Rows of scope
-- 'pooled', written by earlier versions, pooled team-periods as if every one were a
-- new team: their intervals are too narrow, and readers ignore them.
--
-- df: degrees of freedom of the test (period and between_teams: teams - 2;
-- within_teams: pairs - teams - periods). min_detectable_r: the smallest |r| this df
-- detects with 80% power at p < 0.05 (two-sided). reading: 'no_result' (status is not
-- ok), 'too_uncertain' (the 95% interval includes 0), 'underpowered' (it excludes 0,
-- but |r| < min_detectable_r: the size is likely overstated) or 'supported'.
-- df and min_detectable_r are NULL unless status = 'ok'; rows written before this
-- version hold NULL and ''.
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: the migration runner treats "column
-- already exists" from an ADD COLUMN as done, so a re-run of this version is harmless.
ALTER TABLE cxlink.linkage ADD COLUMN df Nullable(UInt32) AFTER periods;
ALTER TABLE cxlink.linkage ADD COLUMN min_detectable_r Nullable(Float64) AFTER p_value;
ALTER TABLE cxlink.linkage ADD COLUMN reading String DEFAULT '' AFTER status;
