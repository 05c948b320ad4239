package persist

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// ErrRefused is wrapped by Restore's error when a snapshot was read but refused:
// it failed a check (the error also wraps ErrMagic, ErrChecksum, …) or its
// content could not be committed. The snapshot was set aside, never deleted.
var ErrRefused = errors.New("snapshot refused")

// Info says what Restore found and did, for logs and readiness reports.
type Info struct {
	// Location is the backend's String().
	Location string
	// From is where the restored snapshot was read: Location, or, when the
	// snapshot there was refused, the previous snapshot restored instead (see
	// History). "" unless Restored.
	From string
	// Refusals says why each snapshot tried before the one restored was
	// refused, newest first, each naming its location: the snapshot at Location
	// (then also Refused), and previous snapshots. Empty when the snapshot at
	// Location was restored or there was none.
	Refusals []string
	// Found is true when the location held a snapshot.
	Found bool
	// Restored is true when the store now holds the snapshot's content.
	Restored bool
	// Refused is true when a snapshot was found but refused; SetAside then says
	// where it was kept (empty when setting it aside failed too).
	Refused  bool
	SetAside string
	// Header is the restored snapshot's header (zero unless Restored).
	Header Header
	// Bytes is the snapshot's size.
	Bytes int
	// Scopes is the number of scopes restored.
	Scopes int
	// StoreRevision is the store's revision after the restore commit.
	StoreRevision uint64
	// Mismatched counts the entries whose content version, once re-encoded by
	// this build, differs from the one recorded (S3, D8: a client holding the old
	// version gets the resource again). MismatchedNames lists the first few.
	Mismatched      int
	MismatchedNames []string
	// Numbered is true when the store continues the restored snapshot's
	// revision numbering (store.Replay): StoreRevision is then the snapshot's
	// lineage revision (Header.Revision), or its newest history revision if
	// that is higher. It is false when the store had already passed those
	// revisions: the content was then committed as a new revision of the
	// store's own, without the history.
	Numbered bool
	// Revisions is the number of history revisions restored, every scope's
	// (store.View.History); HistoryErr says why the history was not restored
	// when the content was restored without it.
	Revisions  int
	HistoryErr string
	// Attachments are the attachments the restored snapshot carried
	// (Persister.SetAttachment); nil when none.
	Attachments map[string][]byte
	// Took is how long the restore took.
	Took time.Duration
	// Err is the text of the error Restore returned, "" if none.
	Err string
}

// String sums the restore up in one line.
func (i Info) String() string {
	switch {
	case i.Restored:
		s := fmt.Sprintf("restored %d resources in %d scopes from %s (revision %d, written %s by %s)",
			i.Header.Resources, i.Scopes, i.From, i.Header.Revision,
			i.Header.WrittenAt.UTC().Format(time.RFC3339), i.Header.Writer)
		if len(i.Refusals) > 0 {
			s += "; newer snapshots refused: " + strings.Join(i.Refusals, "; ")
		}
		if i.Mismatched > 0 {
			s += fmt.Sprintf("; %d resources re-encode to a new content version and will be resent", i.Mismatched)
		}
		if i.Revisions > 0 {
			s += fmt.Sprintf("; %d revisions of history, continuing at revision %d", i.Revisions, i.StoreRevision)
		}
		if i.HistoryErr != "" {
			s += "; " + i.HistoryErr
		}
		return s
	case i.Refused:
		return fmt.Sprintf("snapshot refused, serving from the config source alone: %s", i.Err)
	case i.Err != "":
		return fmt.Sprintf("snapshot not restored, serving from the config source alone: %s", i.Err)
	default:
		return fmt.Sprintf("no snapshot at %s; serving from the config source alone", i.Location)
	}
}

// Restore loads the snapshot held by b into st, before st serves anything. The
// commit makes st hold exactly the snapshot's content (every scope of st or of
// the snapshot is replaced), so a config source that commits the same content
// afterwards changes nothing and no client is sent anything again (S3, D3, D8).
//
// No snapshot is not an error: Info.Found is false and st is untouched. A
// snapshot that fails Decode's checks, or whose content st refuses, is set aside
// with b.SetAside (renamed, or copied on S3; never deleted). If b keeps previous
// snapshots (History), the newest of them that passes the checks is restored
// instead, and Info.From and Info.Refusals say which and why the newer ones were
// refused; the previous snapshots are left as they are. Otherwise st is left
// untouched, and the error wraps ErrRefused and the failed check and says where
// the snapshot went. Any other error (the backend could not be read) leaves both
// untouched.
func Restore(ctx context.Context, b Backend, st *store.Store) (info Info, err error) {
	defer func() {
		if err != nil {
			info.Err = err.Error()
		}
	}()
	start := time.Now()
	info = Info{Location: b.String()}
	data, err := b.Read(ctx)
	if errors.Is(err, ErrNotFound) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("reading snapshot %s: %w", info.Location, err)
	}
	info.Found, info.Bytes = true, len(data)
	why := restoreFrom(st, data, info.Location, &info)
	if why == nil {
		info.Took = time.Since(start)
		return info, nil
	}

	info.Refused = true
	aside, aerr := b.SetAside(ctx, asideSuffix(time.Now()))
	info.SetAside = aside
	if aerr != nil {
		err = fmt.Errorf("%w: %s: %w (and it could not be set aside: %w)", ErrRefused, info.Location, why, aerr)
	} else {
		err = fmt.Errorf("%w: %s: %w; kept as %s", ErrRefused, info.Location, why, aside)
	}
	info.Refusals = []string{strings.TrimPrefix(err.Error(), ErrRefused.Error()+": ")}
	if h, ok := b.(History); ok {
		for n := 1; n <= h.Kept(); n++ {
			data, where, rerr := h.Previous(ctx, n)
			switch {
			case errors.Is(rerr, ErrNotFound):
				continue
			case rerr != nil:
				info.Refusals = append(info.Refusals, fmt.Sprintf("%s: reading it: %v", where, rerr))
				continue
			}
			if why := restoreFrom(st, data, where, &info); why != nil {
				info.Refusals = append(info.Refusals, fmt.Sprintf("%s: %v", where, why))
				continue
			}
			info.Bytes = len(data)
			info.Took = time.Since(start)
			return info, nil
		}
		if len(info.Refusals) > 1 {
			err = fmt.Errorf("%w; no previous snapshot passes its checks: %s", err, strings.Join(info.Refusals[1:], "; "))
		}
	}
	info.Took = time.Since(start)
	return info, err
}

// restoreFrom commits the snapshot data, read from the location from, into st
// and records it in info; or says why it refuses it, leaving st and info as they
// were.
func restoreFrom(st *store.Store, data []byte, from string, info *Info) error {
	snap, err := decodeAliased(data)
	if err != nil {
		return err
	}
	res, numbered, herr, err := commitSnapshot(st, snap)
	if err != nil {
		if derr := undecodable(snap); derr != nil {
			return fmt.Errorf("%w: %w", ErrBody, derr)
		}
		return fmt.Errorf("the store refused its content: %w", err)
	}
	info.Restored = true
	info.Numbered = numbered
	info.Revisions, info.HistoryErr = 0, ""
	if numbered {
		for _, h := range snap.History {
			info.Revisions += len(h.Revisions)
		}
	}
	if herr != nil {
		info.HistoryErr = herr.Error()
	}
	info.Attachments = snap.Attachments
	info.From = from
	info.Header = snap.Header
	info.Scopes = len(snap.Scopes)
	info.StoreRevision = res.Revision

	// S3, D8: versions derive from content, so a re-encoded resource has the
	// version it was written with, unless this build encodes it differently. Such
	// a resource is kept (it is the same configuration) but will be resent.
	v := st.View()
	for _, sc := range snap.Scopes {
		for _, t := range sc.Tables {
			tab := v.Table(sc.Name, t.TypeURL)
			for _, e := range t.Entries {
				if got := tab.Get(e.Name); got == nil || got.Version != e.Version {
					info.Mismatched++
					if len(info.MismatchedNames) < 5 {
						info.MismatchedNames = append(info.MismatchedNames,
							fmt.Sprintf("%s/%s/%s", sc.Name, protocol.Short(t.TypeURL), e.Name))
					}
				}
			}
		}
	}
	return nil
}

// commitSnapshot makes st hold the snapshot's content and, when st has not
// passed the snapshot's revisions (a store that has served nothing yet), its
// history, continuing its revision numbering (store.Replay): numbered is then
// true. Otherwise, or when the history cannot be replayed (herr says why),
// the content alone is committed as a new revision of st, labelled "restore".
func commitSnapshot(st *store.Store, snap *Snapshot) (res store.Result, numbered bool, herr, err error) {
	cur := st.View()
	switch first := firstRevision(snap); {
	case first <= cur.Revision():
		if len(snap.History) > 0 {
			herr = fmt.Errorf("history not restored: the store is at revision %d, past the snapshot's revision %d", cur.Revision(), first)
		}
	default:
		commits, head := pastCommits(cur, snap)
		res, err := st.Replay(head, commits)
		if err == nil {
			return res, true, nil, nil
		}
		if len(snap.History) == 0 {
			return res, false, nil, err
		}
		herr = fmt.Errorf("history not restored: %w", err)
	}
	res, err = st.CommitWith(store.CommitOptions{Source: "restore"}, restoreChanges(cur, snap)...)
	return res, false, herr, err
}

// firstRevision is the revision of the first commit pastCommits makes: the
// oldest of the history, or the snapshot's when it has none.
func firstRevision(snap *Snapshot) uint64 {
	first := snap.Revision
	for _, h := range snap.History {
		first = max(first, h.Revisions[0].Revision.Revision)
	}
	for _, h := range snap.History {
		first = min(first, h.Revisions[len(h.Revisions)-1].Revision.Revision)
	}
	return first
}

// histKey names a resource of a scope.
type histKey struct{ typeURL, name string }

// pastCommits turns a snapshot into the commits that rebuild its history and
// content (store.Replay), in revision order, and the revision to continue
// from: each scope's oldest revision is its whole content then, each newer one
// what changed; a scope the snapshot holds without a history, and a scope of
// cur the snapshot does not hold, are committed at the last revision, labelled
// "restore".
func pastCommits(cur store.View, snap *Snapshot) ([]store.PastCommit, uint64) {
	head := snap.Revision
	byRev := map[uint64]*store.PastCommit{}
	at := func(rev uint64, t time.Time) *store.PastCommit {
		pc := byRev[rev]
		if pc == nil {
			pc = &store.PastCommit{Revision: rev, At: t}
			byRev[rev] = pc
		}
		return pc
	}
	content := map[string]*Scope{}
	for i := range snap.Scopes {
		content[snap.Scopes[i].Name] = &snap.Scopes[i]
	}
	withHistory := map[string]bool{}
	for _, h := range snap.History {
		withHistory[h.Scope] = true
		head = max(head, h.Revisions[0].Revision.Revision)
		replayScope(h, content[h.Scope], at)
	}
	var rest []store.Change
	for _, sc := range snap.Scopes {
		if !withHistory[sc.Name] {
			rest = append(rest, store.ReplaceScope(sc.Name))
			for _, t := range sc.Tables {
				for _, e := range t.Entries {
					rest = append(rest, store.SetEncoded(sc.Name, t.TypeURL, e.Name, e.Body))
				}
			}
		}
	}
	for _, name := range cur.Scopes() {
		if content[name] == nil && !withHistory[name] {
			rest = append(rest, store.ReplaceScope(name))
		}
	}
	if len(rest) > 0 || len(byRev) == 0 {
		pc := at(head, time.Now())
		pc.Changes = append(pc.Changes, rest...)
	}
	commits := make([]store.PastCommit, 0, len(byRev))
	for _, pc := range byRev {
		commits = append(commits, *pc)
	}
	slices.SortFunc(commits, func(a, b store.PastCommit) int { return cmp.Compare(a.Revision, b.Revision) })
	return commits, head
}

// replayScope adds to the commits (at) the changes that rebuild the history h
// of one scope, whose current content is sc (nil: empty).
func replayScope(h ScopeHistory, sc *Scope, at func(uint64, time.Time) *store.PastCommit) {
	revs := h.Revisions
	// mention[i] is what revision i held that differs from revision i-1, the
	// next newer one (nil: not held).
	mention := make([]map[histKey]*Entry, len(revs))
	for i := 1; i < len(revs); i++ {
		m := make(map[histKey]*Entry, len(revs[i].Set)+len(revs[i].Absent))
		for j := range revs[i].Set {
			e := &revs[i].Set[j]
			m[histKey{e.TypeURL, e.Name}] = &e.Entry
		}
		for _, a := range revs[i].Absent {
			m[histKey{a.TypeURL, a.Name}] = nil
		}
		mention[i] = m
	}
	current := func(k histKey) *Entry {
		if sc == nil {
			return nil
		}
		for ti := range sc.Tables {
			t := &sc.Tables[ti]
			if t.TypeURL != k.typeURL {
				continue
			}
			if i, ok := slices.BinarySearchFunc(t.Entries, k.name, func(e Entry, n string) int { return strings.Compare(e.Name, n) }); ok {
				return &t.Entries[i]
			}
		}
		return nil
	}
	// valueAt is what revision i held under k.
	valueAt := func(k histKey, i int) *Entry {
		for j := i; j >= 1; j-- {
			if e, ok := mention[j][k]; ok {
				return e
			}
		}
		return current(k)
	}

	// The oldest revision: the current content, but for what the history says
	// the oldest revision held otherwise.
	oldest := len(revs) - 1
	over := map[histKey]*Entry{}
	for i := 1; i <= oldest; i++ {
		maps.Copy(over, mention[i])
	}
	pc := at(revs[oldest].Revision.Revision, revs[oldest].Revision.At)
	pc.Changes = append(pc.Changes, store.ReplaceScope(h.Scope))
	if sc != nil {
		for _, t := range sc.Tables {
			for _, e := range t.Entries {
				if _, ok := over[histKey{t.TypeURL, e.Name}]; !ok {
					pc.Changes = append(pc.Changes, store.SetEncoded(h.Scope, t.TypeURL, e.Name, e.Body))
				}
			}
		}
	}
	for k, e := range over {
		if e != nil {
			pc.Changes = append(pc.Changes, store.SetEncoded(h.Scope, k.typeURL, e.Name, e.Body))
		}
	}
	pc.Revisions = append(pc.Revisions, revs[oldest].Revision)

	// Each newer revision: what changed from the one before.
	for i := oldest; i >= 1; i-- {
		pc := at(revs[i-1].Revision.Revision, revs[i-1].Revision.At)
		for k := range mention[i] {
			if e := valueAt(k, i-1); e != nil {
				pc.Changes = append(pc.Changes, store.SetEncoded(h.Scope, k.typeURL, e.Name, e.Body))
			} else {
				// The store keeps a deleted name in its change log: not one
				// that aliases the snapshot's bytes.
				pc.Changes = append(pc.Changes, store.Delete(h.Scope, k.typeURL, strings.Clone(k.name)))
			}
		}
		pc.Revisions = append(pc.Revisions, revs[i-1].Revision)
	}
}

// restoreChanges turns a snapshot into one commit that makes the store hold
// exactly its content. The resources go as the snapshot holds them
// (store.SetEncoded): the store decodes only those whose encoding differs from
// what it holds, so restoring a snapshot that matches the store but for one
// resource decodes, validates and encodes that one.
func restoreChanges(cur store.View, snap *Snapshot) []store.Change {
	changes := make([]store.Change, 0, snap.Resources+len(snap.Scopes)+len(cur.Scopes()))
	replaced := make(map[string]bool)
	for _, sc := range snap.Scopes {
		changes = append(changes, store.ReplaceScope(sc.Name))
		replaced[sc.Name] = true
		for _, t := range sc.Tables {
			for _, e := range t.Entries {
				changes = append(changes, store.SetEncoded(sc.Name, t.TypeURL, e.Name, e.Body))
			}
		}
	}
	for _, name := range cur.Scopes() {
		if !replaced[name] {
			changes = append(changes, store.ReplaceScope(name))
		}
	}
	return changes
}

// undecodable says which resources of a snapshot the store refused this
// build cannot decode (the first few), or returns nil if it decodes them all.
// Only a refused restore pays for decoding every resource again.
func undecodable(snap *Snapshot) error {
	var errs []string
	for _, sc := range snap.Scopes {
		for _, t := range sc.Tables {
			for _, e := range t.Entries {
				if _, err := resources.Decode(t.TypeURL, e.Body); err != nil && len(errs) < 5 {
					errs = append(errs, fmt.Sprintf("scope %q: %s %q: %v", sc.Name, protocol.Short(t.TypeURL), e.Name, err))
				}
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("undecodable resources: %s", strings.Join(errs, "; "))
}
