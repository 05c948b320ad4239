package main

import (
	"fmt"
	"strings"
	"time"
)

// What an operator is shown of the config directory beyond its last reload:
// on the admin page, a file a reload waits for.

// sourceNotes writes the admin page's lines about a file being written.
func sourceNotes(b *strings.Builder, st reloadState) {
	if st.Writing != "" {
		fmt.Fprintf(b, "\nwaiting   for %s to be quiet (being written since %s)\n", st.Writing, st.WritingSince.Format(time.RFC3339))
	}
}
