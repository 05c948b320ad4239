package source

import (
	"context"
	"time"

	"github.com/leanxds/leanxds/store"
)

// Source is where a store's content comes from. It commits what it reads to
// the store it was made with, each change as one atomic store.Commit, and keeps
// the last good content served when what it reads is bad.
type Source interface {
	// Load commits the source's current content once, waiting for it to be
	// readable until ctx ends. On error nothing is committed: the store keeps
	// what it held (a restored snapshot, or nothing), and the caller decides
	// whether that is enough to serve. The error is also recorded in Status.
	Load(ctx context.Context) (store.Result, error)
	// Run keeps the store equal to the source until ctx ends, committing every
	// change after Load (Run calls Load first if it was not called). Bad
	// content is logged, recorded in Status and not committed; Run goes on.
	// It returns nil when ctx ends, or an error if it cannot go on at all.
	Run(ctx context.Context) error
	// Status returns what an operator is shown of the source: how its content
	// was last applied, the errors of a rejected one, and what holds a change
	// back.
	Status() Status
}

// Kinds of source, as Status.Kind names them.
const (
	KindDir  = "directory"
	KindEtcd = "etcd"
)

// Outcome is what became of one attempt to apply a source's content, as the
// metrics (leanxds_config_reloads_total{result}) and the admin page name it.
type Outcome string

const (
	// Applied: the content changed the store.
	Applied Outcome = "applied"
	// Unchanged: the content was read and matched the store (dedup).
	Unchanged Outcome = "unchanged"
	// Rejected: the content was invalid, or left a reference dangling; the
	// last good content is still served.
	Rejected Outcome = "rejected"
	// Held: the content would delete too much (the deletion guard); the last
	// good content is still served until it is confirmed.
	Held Outcome = "held"
)

// Status is how a source's content was last applied. It is a value: a source
// builds a new one on each change and never modifies one it handed out, so
// its slices and maps may be read without a lock, and must not be modified.
// The JSON form is that of the admin server's /debug/reload.
type Status struct {
	// Kind is the kind of source: KindDir or KindEtcd.
	Kind string `json:"kind"`
	// Location is where the content comes from: the config directory's path,
	// or the etcd:// address.
	Location string `json:"location"`
	// Dir is the config directory's path; empty for another kind of source.
	Dir string `json:"dir"`
	// Generation and EtcdRevision are, for etcd, the generation served and
	// the etcd revision the store is equal to.
	Generation   string `json:"generation,omitempty"`
	EtcdRevision int64  `json:"etcd_revision,omitempty"`
	// Loaded is true once content was applied since the process started.
	Loaded      bool      `json:"loaded"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastApplied time.Time `json:"last_applied,omitzero"`
	// Revision is the store revision after the last good load.
	Revision uint64 `json:"revision"`
	// Files and Scopes describe the content being served: resource files read
	// (for etcd, keys), and resources per scope.
	Files  int            `json:"files"`
	Scopes map[string]int `json:"scopes"`
	// Rejected counts rejected loads since start (for etcd, refused values).
	Rejected int `json:"rejected_reloads"`
	// Errors are those of the last load, one line each, file first; empty when
	// it was applied (for etcd: one per key whose value is refused, key
	// first; the others are applied). LastRejected is when it was rejected.
	Errors       []string  `json:"errors,omitempty"`
	LastRejected time.Time `json:"last_rejected,omitzero"`
	// Warnings are the references the content being served makes to resources
	// it does not define: served with AllowDangling only, refused otherwise.
	Warnings []string `json:"warnings,omitempty"`
	// Held is the load the deletion guard holds back until it is confirmed or
	// the content changes again; nil when none.
	Held *HeldReload `json:"held,omitempty"`
	// Writing is the file a load waits for, being written since WritingSince;
	// empty when no load waits.
	Writing      string    `json:"writing,omitempty"`
	WritingSince time.Time `json:"writing_since,omitzero"`
	// Stale says why the source's changes are not seen (the directory was
	// removed, or cannot be watched; etcd is unreachable), since StaleSince:
	// the last good content is served. Empty while they are.
	Stale      string    `json:"stale,omitempty"`
	StaleSince time.Time `json:"stale_since,omitzero"`
}

// Resources returns the number of resources the content being served holds.
func (s Status) Resources() int {
	n := 0
	for _, c := range s.Scopes {
		n += c
	}
	return n
}

// setStale sets Stale to reason ("": not stale), and StaleSince to now when
// the source becomes stale, and returns what Stale was.
func (s *Status) setStale(reason string, now time.Time) (was string) {
	was, s.Stale = s.Stale, reason
	switch {
	case reason != "" && was == "":
		s.StaleSince = now
	case reason == "":
		s.StaleSince = time.Time{}
	}
	return was
}
