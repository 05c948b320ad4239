package fleet

import (
	"maps"
	"slices"

	"github.com/leanxds/leanxds/admin"
)

// change is one key a poll writes: a node's status to put, or, when status is
// nil, a node that left, to delete.
type change struct {
	node   string
	status *admin.FleetNode
}

// diff returns what to write for etcd, which holds written, to hold now, in
// node order: the nodes whose status changed or appeared, and those that
// left.
func diff(written, now map[string]*admin.FleetNode) []change {
	var out []change
	for node, st := range now {
		if old, ok := written[node]; !ok || !old.Equal(st) {
			out = append(out, change{node: node, status: st})
		}
	}
	for node := range written {
		if _, ok := now[node]; !ok {
			out = append(out, change{node: node})
		}
	}
	slices.SortFunc(out, func(a, b change) int {
		switch {
		case a.node < b.node:
			return -1
		case a.node > b.node:
			return 1
		}
		return 0
	})
	return out
}

// rotate returns n of changes (sorted by node), starting with the first node
// after cursor and going round: a poll that may write only part of what
// changed goes on where the previous one stopped, so that a node is not left
// behind by those before it.
func rotate(changes []change, cursor string, n int) []change {
	if n >= len(changes) {
		return changes
	}
	i, _ := slices.BinarySearchFunc(changes, cursor, func(c change, cursor string) int {
		switch {
		case c.node <= cursor:
			return -1
		}
		return 1
	})
	out := make([]change, 0, n)
	for len(out) < n {
		if i == len(changes) {
			i = 0
		}
		out = append(out, changes[i])
		i++
	}
	return out
}

// batch splits ops, whose sizes in bytes are size(i), into runs of at most
// maxOps operations and maxBytes bytes (a single larger op makes a run of its
// own), returned as the index bounds [start, end) of each run.
func batch(n int, size func(i int) int, maxOps, maxBytes int) [][2]int {
	var out [][2]int
	start, bytes := 0, 0
	for i := range n {
		s := size(i)
		if i > start && (i-start == maxOps || bytes+s > maxBytes) {
			out = append(out, [2]int{start, i})
			start, bytes = i, 0
		}
		bytes += s
	}
	if start < n {
		out = append(out, [2]int{start, n})
	}
	return out
}

// nodesOf returns the node IDs of m, sorted (for tests and logs).
func nodesOf[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
