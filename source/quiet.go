package source

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// A file rewritten in place is, while it is being written, often a valid prefix
// of itself: a YAML list cut after its 66th item is a list of 66 clusters, and
// applying it deletes the others from every proxy. Events say that a file
// changed, not that it is complete. So a reload reads the directory only once
// its files are quiet (quietCheck), and checks after reading that none changed
// while it read (dirStamps.changed); otherwise it is put off (NotQuietError)
// and tried again later. A writer that pauses longer than the quiet period in
// the middle of a file can still be read half-way: the deletion guard
// (deleteGuard) and writing files atomically (docs/config.md) cover that.

// dirStamps are the stamps of a directory's resource files, by path.
type dirStamps map[string]fileStamp

func stampsOf(files []configFile) dirStamps {
	out := make(dirStamps, len(files))
	for _, f := range files {
		out[f.path] = f.stamp
	}
	return out
}

// changed returns the first path, in order, that is in one of a and b and not
// the other, or in both with different stamps; "" when they are the same.
func (a dirStamps) changed(b dirStamps) string {
	paths := slices.Sorted(maps.Keys(a))
	for p := range b {
		if _, ok := a[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		sa, inA := a[p]
		sb, inB := b[p]
		if inA != inB || sa.size != sb.size || !sa.mtime.Equal(sb.mtime) {
			return p
		}
	}
	return ""
}

// quietCheck decides whether the files of a directory are quiet: each last
// modified at least period ago, by the source's clock. A file system whose
// clock runs ahead of ours gives modification times in the future: the files
// are then quiet once their stamps have not changed for a period.
type quietCheck struct {
	// period is how long a file must be left alone before it is read
	// (--debounce); 0 reads files at once.
	period time.Duration
	// last is the stamps seen by the last check that found the files not
	// quiet, and lastAt when they were first seen.
	last   dirStamps
	lastAt time.Time
}

// check returns "" when the files are quiet at now; otherwise the most recently
// modified file, and how long to wait before checking again.
func (q *quietCheck) check(cur dirStamps, now time.Time) (file string, wait time.Duration) {
	if q.period <= 0 {
		return "", 0
	}
	same := q.last != nil && q.last.changed(cur) == ""
	if same && now.Sub(q.lastAt) >= q.period {
		return "", 0
	}
	var youngest time.Time
	for _, p := range slices.Sorted(maps.Keys(cur)) {
		if m := cur[p].mtime; now.Sub(m) < q.period && (file == "" || m.After(youngest)) {
			file, youngest = p, m
		}
	}
	if file == "" {
		return "", 0
	}
	if !same {
		q.last, q.lastAt = cur, now
	}
	wait = youngest.Add(q.period).Sub(now)
	if wait <= 0 || wait > q.period {
		wait = q.period // a modification time in the future
	}
	return file, wait
}

// NotQuietError puts a reload off: a file was being written when it was to be
// read, or changed while it was read. Nothing was applied or recorded; the
// reload is tried again after retry.
type NotQuietError struct {
	// File is the file being written.
	File string
	// WhileRead is set when the file changed while the reload read it.
	WhileRead bool
	period    time.Duration
	retry     time.Duration
}

func (e *NotQuietError) Error() string {
	if e.WhileRead {
		return fmt.Sprintf("%s changed while it was read: it is read again once the files are quiet", e.File)
	}
	return fmt.Sprintf("%s was modified less than %s ago: it is read once the files are quiet", e.File, e.period)
}
