package store

import (
	"slices"
	"sort"
)

// maxLog bounds how many changes a table remembers for ChangedSince. Past it, the
// oldest revisions are forgotten (a reader that far behind compares contents).
const maxLog = 4096

type change struct {
	rev  uint64
	name string
}

// changeLog is an append-only record of recent changes, in revision order.
//
// Tables of successive revisions share one backing array: the writer appends past
// the len that older tables see, so older readers never observe the new elements
// and nothing is copied per commit. When the log outgrows maxLog the writer starts
// a new array holding the newest half.
type changeLog struct {
	changes []change
	// floor: every change with a revision above floor is in changes.
	floor uint64
}

func (l changeLog) since(rev uint64) ([]string, bool) {
	if rev < l.floor {
		return nil, false
	}
	i := sort.Search(len(l.changes), func(i int) bool { return l.changes[i].rev > rev })
	if i == len(l.changes) {
		return nil, true
	}
	names := make([]string, 0, len(l.changes)-i)
	for _, c := range l.changes[i:] {
		names = append(names, c.name)
	}
	slices.Sort(names)
	return slices.Compact(names), true
}

// appended returns the log with the names changed at rev added. Only the writer
// calls it, on the newest table.
func (l changeLog) appended(rev uint64, names []string) changeLog {
	for _, n := range names {
		l.changes = append(l.changes, change{rev: rev, name: n})
	}
	if len(l.changes) <= maxLog {
		return l
	}
	// Forget whole revisions, oldest first, until half the budget is left; the
	// newest revision is always kept, however large.
	cut := len(l.changes) - maxLog/2
	for cut < len(l.changes) && l.changes[cut].rev == l.changes[cut-1].rev {
		cut++
	}
	if cut == len(l.changes) {
		cut = sort.Search(len(l.changes), func(i int) bool { return l.changes[i].rev == rev })
	}
	if cut == 0 {
		return l // the log holds the newest revision alone
	}
	return changeLog{
		changes: slices.Clone(l.changes[cut:]),
		floor:   l.changes[cut-1].rev,
	}
}
