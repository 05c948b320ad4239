package admin

import (
	"time"
)

// HistoryPage is the JSON of /debug/history: the revisions the store keeps of
// each scope, newest first.
type HistoryPage struct {
	// Revision is the store's newest revision.
	Revision uint64 `json:"revision"`
	// Revisions are every scope's kept revisions, newest first; a commit
	// that changed several scopes is one entry per scope.
	Revisions []HistoryEntry `json:"revisions"`
}

// HistoryEntry is one revision of one scope.
type HistoryEntry struct {
	Revision uint64    `json:"revision"`
	Scope    string    `json:"scope"`
	At       time.Time `json:"at"`
	// Source is who committed it: "dir /etc/leanxds", "rollback to 12", ...
	Source string `json:"source"`
	// Resources is how many resources the scope held at that revision.
	Resources int `json:"resources"`
	// Added, Changed and Removed count the resources the revision changed,
	// and Names lists the first of them: "+CDS/web", "~LDS/main", "-RDS/old".
	Added   int      `json:"added"`
	Changed int      `json:"changed"`
	Removed int      `json:"removed"`
	Names   []string `json:"names,omitempty"`
	// Current is set on the scope's newest revision: what it serves now.
	Current bool `json:"current,omitempty"`
}
