// Package dashboards expands the Grafana dashboards' queries (the JSON files beside it)
// as Grafana and the ClickHouse datasource do before they reach the server: variables,
// and the datasource's macros. Tests and benchmarks that run the panels' queries share it.
package dashboards

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ExpandVars substitutes Grafana variables ($name, ${name} and ${name:percentencode})
// with values.
func ExpandVars(s string, values map[string]string) string {
	for name, v := range values {
		s = strings.ReplaceAll(s, "${"+name+":percentencode}", PercentEncode(v))
		s = strings.ReplaceAll(s, "${"+name+"}", v)
		s = regexp.MustCompile(`\$`+regexp.QuoteMeta(name)+`\b`).ReplaceAllString(s, v)
	}
	return s
}

// PercentEncode is Grafana's percentencode format (encodeURIComponentStrict): every
// byte but the unreserved letters, digits and -_.~ as %XX.
func PercentEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

var timeFilter = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`)

// ExpandClickHouseMacros expands the macros of grafana-clickhouse-datasource as its
// pkg/macros documents them: $__timeFilter(col) → col >= toDateTime(from) AND col <=
// toDateTime(to), $__fromTime and $__toTime → toDateTime(unix), $__interval_s → seconds.
func ExpandClickHouseMacros(sql string, from, to time.Time, interval time.Duration) string {
	sql = timeFilter.ReplaceAllStringFunc(sql, func(m string) string {
		col := strings.TrimSpace(timeFilter.FindStringSubmatch(m)[1])
		return fmt.Sprintf("%s >= toDateTime(%d) AND %s <= toDateTime(%d)", col, from.Unix(), col, to.Unix())
	})
	sql = strings.ReplaceAll(sql, "$__fromTime", fmt.Sprintf("toDateTime(%d)", from.Unix()))
	sql = strings.ReplaceAll(sql, "$__toTime", fmt.Sprintf("toDateTime(%d)", to.Unix()))
	return strings.ReplaceAll(sql, "$__interval_s", strconv.Itoa(int(max(interval.Seconds(), 1))))
}
