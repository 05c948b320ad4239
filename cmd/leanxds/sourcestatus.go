package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// What an operator is shown of the config directory beyond its last reload: a
// reload the deletion guard holds back, and a file a reload waits for. The
// admin page shows both, /readyz and the metrics a held reload.

// sourceNotes writes the admin page's lines about a held reload and a file
// being written.
func sourceNotes(b *strings.Builder, st reloadState) {
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
// good config.
func readyNotes(st reloadState) []string {
	var out []string
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

// sourceCollector reports, when scraped, whether a reload is held.
type sourceCollector struct{ src *configSource }

var (
	reloadHeldDesc = prometheus.NewDesc("leanxds_config_reload_held",
		"1 while a reload of the config directory is held back because it would delete too much (--max-delete-fraction): it waits for `leanxds reload --confirm` or another change.", nil, nil)
)

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reloadHeldDesc
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.State()
	ch <- prometheus.MustNewConstMetric(reloadHeldDesc, prometheus.GaugeValue, boolValue(st.Held != nil))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
