package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leanxds/leanxds/source"
)

// What an operator is shown of the config directory beyond its last reload: a
// reload the deletion guard holds back, a file a reload waits for, and a
// directory that is no longer watched. The admin page shows all three,
// /readyz the first and the last, and the metrics the first and the last.

// sourceNotes writes the admin page's lines about a held reload, a file being
// written and a stale directory.
func sourceNotes(b *strings.Builder, st source.Status) {
	if st.Stale != "" {
		fmt.Fprintf(b, "\nSTALE since %s: the config directory is not watched (%s): its changes are not seen, the last good config is served\n",
			st.StaleSince.Format(time.RFC3339), st.Stale)
	}
	if st.Held != nil {
		fmt.Fprintf(b, "\nRELOAD HELD at %s: it would delete too much; the last good config is still served:\n", st.Held.At.Format(time.RFC3339))
		for _, d := range st.Held.Deletions {
			fmt.Fprintf(b, "  deletes %s\n", d)
		}
		fmt.Fprintf(b, "  apply it with `leanxds reload --confirm` (POST /reload?confirm=true), or change the files\n")
	}
	if st.Writing != "" {
		fmt.Fprintf(b, "\nwaiting   for %s to be quiet (being written since %s)\n", st.Writing, st.WritingSince.Format(time.RFC3339))
	}
}

// readyNotes are what /readyz adds, after "ready: ...", about the config
// directory. They do not make the server unready: what it serves is the last
// good config either way (docs/serve.md says why).
func readyNotes(st source.Status) []string {
	var out []string
	if st.Stale != "" {
		out = append(out, fmt.Sprintf("config directory stale since %s: not watched (%s)", st.StaleSince.Format(time.RFC3339), st.Stale))
	}
	if st.Held != nil {
		ds := make([]string, len(st.Held.Deletions))
		for i, d := range st.Held.Deletions {
			ds[i] = d.String()
		}
		out = append(out, fmt.Sprintf("reload held since %s: it would delete %s; confirm with `leanxds reload --confirm`",
			st.Held.At.Format(time.RFC3339), strings.Join(ds, ", ")))
	}
	return out
}

// sourceCollector reports, when scraped, whether a reload is held and whether
// the directory is stale.
type sourceCollector struct{ src *source.Dir }

var (
	reloadHeldDesc = prometheus.NewDesc("leanxds_config_reload_held",
		"1 while a reload of the config directory is held back because it would delete too much (--max-delete-fraction): it waits for `leanxds reload --confirm` or another change.", nil, nil)
	sourceStaleDesc = prometheus.NewDesc("leanxds_config_source_stale",
		"1 while the config directory is not watched (removed, or cannot be watched): its changes are not seen, and the last good config is served.", nil, nil)
)

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reloadHeldDesc
	ch <- sourceStaleDesc
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	ch <- prometheus.MustNewConstMetric(reloadHeldDesc, prometheus.GaugeValue, boolValue(st.Held != nil))
	ch <- prometheus.MustNewConstMetric(sourceStaleDesc, prometheus.GaugeValue, boolValue(st.Stale != ""))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
