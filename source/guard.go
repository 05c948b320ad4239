package source

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// deleteGuard holds back a reload that would delete most of what a scope
// serves of a type: far more often a file read half-written, a volume
// unmounted or a tool gone wrong than a decision, and every proxy of the scope
// would drop that traffic at once. A held reload is applied when an operator
// confirms it (Dir.Reload with confirm: `leanxds reload --confirm`), or
// replaced by the next reload when the files change again
// (DirOptions.MaxDeleteFraction, DeleteGuardMin).
type deleteGuard struct {
	// fraction is the share of a type's resources in a scope a reload may
	// delete; 1 or more (or 0, the zero value) turns the guard off.
	fraction float64
	// min is the fewest deletions of a type in a scope that are held, so that
	// a small config can be reshaped freely: deleting 3 of 4 clusters is not held.
	min int
}

func (g deleteGuard) off() bool { return g.fraction <= 0 || g.fraction >= 1 }

// holds reports whether deleting deleted of a type's of resources in a scope
// is held back.
func (g deleteGuard) holds(deleted, of int) bool {
	return !g.off() && deleted >= g.min && float64(deleted) > g.fraction*float64(of)
}

// Deletion is what a reload would delete of one type in one scope.
type Deletion struct {
	Scope string `json:"scope"`
	// Type is the short name of the type (CDS, EDS, ...).
	Type    string `json:"type"`
	Deleted int    `json:"deleted"`
	// Of is how many the scope serves now.
	Of int `json:"of"`
}

func (d Deletion) String() string {
	return fmt.Sprintf("%d of %d %s in scope %q", d.Deleted, d.Of, d.Type, d.Scope)
}

// held returns the deletions the guard holds back if cfg replaced what v
// holds: for every type of every scope v serves, the resources cfg no longer
// has, when they are too many.
func (g deleteGuard) held(v store.View, cfg *configDir) []Deletion {
	if g.off() {
		return nil
	}
	type key struct{ scope, typeURL, name string }
	keep := make(map[key]bool, cfg.count(""))
	for scope, rs := range cfg.scopes {
		for _, r := range rs {
			keep[key{scope, r.TypeURL, r.Name}] = true
		}
	}
	var out []Deletion
	for _, scope := range v.Scopes() {
		for typeURL, t := range v.Tables(scope) {
			deleted := 0
			for e := range t.All() {
				if !keep[key{scope, typeURL, e.Name}] {
					deleted++
				}
			}
			if g.holds(deleted, t.Len()) {
				out = append(out, Deletion{Scope: scope, Type: protocol.Short(typeURL), Deleted: deleted, Of: t.Len()})
			}
		}
	}
	return out
}

// HeldReload is a reload the guard held back: the last good config is still
// served. It is never modified once made.
type HeldReload struct {
	At time.Time `json:"at"`
	// Deletions are those over the guard's limit.
	Deletions []Deletion `json:"deletions"`
	// digest is the content held (configDir.digest): a confirmation applies
	// that content only.
	digest [sha256.Size]byte
}

// HeldError is the error of a reload held back by the guard.
type HeldError struct {
	// Held is the reload held back, as Status shows it.
	Held  *HeldReload
	guard deleteGuard
	// Changed is set when the reload was confirmed, but the directory no
	// longer holds what was held: the new content is held in its place.
	Changed bool
}

func (e *HeldError) Error() string {
	ds := make([]string, len(e.Held.Deletions))
	for i, d := range e.Held.Deletions {
		ds[i] = d.String()
	}
	msg := fmt.Sprintf("reload held: it would delete %s (more than %g%% of a type in a scope, and at least %d; --max-delete-fraction, --delete-guard-min); "+
		"the last good config is still served. Confirm with `leanxds reload --confirm`, or change the files",
		strings.Join(ds, ", "), e.guard.fraction*100, e.guard.min)
	if e.Changed {
		msg = "the directory changed since the reload was held, so it was not confirmed; " + msg
	}
	return msg
}
