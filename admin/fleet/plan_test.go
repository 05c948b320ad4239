package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/admin"
)

func node(id, acked string) *admin.FleetNode {
	return &admin.FleetNode{Node: id, Scope: "default", Replica: "r1", Types: map[string]admin.FleetType{
		"CDS": {ACKed: acked, Sent: acked, Wildcard: true, Content: acked},
	}}
}

func nodesOfChanges(cs []change) []string {
	var out []string
	for _, c := range cs {
		s := c.node
		if c.status == nil {
			s += "-"
		}
		out = append(out, s)
	}
	return out
}

// Only what changed is written: a node whose status is the same is left
// alone, a new or changed one is put, one that left is deleted.
func TestDiffWritesChangesOnly(t *testing.T) {
	written := map[string]*admin.FleetNode{"a": node("a", "v1"), "b": node("b", "v1"), "c": node("c", "v1")}
	now := map[string]*admin.FleetNode{"a": node("a", "v1"), "b": node("b", "v2"), "d": node("d", "v1")}
	require.Equal(t, []string{"b", "c-", "d"}, nodesOfChanges(diff(written, now)))
	require.Empty(t, diff(now, now))

	// A NACK is a change; the same NACK again is not.
	n1, n2 := node("a", "v1"), node("a", "v1")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n1.Types["CDS"] = admin.FleetType{ACKed: "v1", Sent: "v2", NACK: &admin.FleetNACK{Version: "v2", Nonce: "2", Error: "bad", At: at}}
	require.Len(t, diff(map[string]*admin.FleetNode{"a": n2}, map[string]*admin.FleetNode{"a": n1}), 1)
	n3 := node("a", "v1")
	n3.Types["CDS"] = admin.FleetType{ACKed: "v1", Sent: "v2", NACK: &admin.FleetNACK{Version: "v2", Nonce: "2", Error: "bad", At: at.Local()}}
	require.Empty(t, diff(map[string]*admin.FleetNode{"a": n3}, map[string]*admin.FleetNode{"a": n1}))
}

// A poll that may write only part of what changed goes on, at the next, after
// the last node it wrote, and round: every node is written in turn.
func TestRotateGoesRound(t *testing.T) {
	var cs []change
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		cs = append(cs, change{node: n, status: node(n, "v1")})
	}
	require.Equal(t, []string{"a", "b"}, nodesOfChanges(rotate(cs, "", 2)))
	require.Equal(t, []string{"c", "d"}, nodesOfChanges(rotate(cs, "b", 2)))
	require.Equal(t, []string{"e", "a"}, nodesOfChanges(rotate(cs, "d", 2)))
	// A cursor that is no longer among the changes: the next node after it.
	require.Equal(t, []string{"d", "e", "a"}, nodesOfChanges(rotate(cs, "cc", 3)))
	require.Len(t, rotate(cs, "c", 9), 5)
	require.Empty(t, rotate(cs, "c", 0))
}

// Transactions hold at most maxOps operations and maxBytes bytes; an
// operation larger than maxBytes goes alone.
func TestBatchBoundsOpsAndBytes(t *testing.T) {
	sizes := []int{10, 10, 10, 10, 10}
	size := func(i int) int { return sizes[i] }
	require.Equal(t, [][2]int{{0, 2}, {2, 4}, {4, 5}}, batch(5, size, 2, 1000))
	require.Equal(t, [][2]int{{0, 3}, {3, 5}}, batch(5, size, 128, 30))
	sizes = []int{10, 50, 10}
	require.Equal(t, [][2]int{{0, 1}, {1, 2}, {2, 3}}, batch(3, size, 128, 30))
	require.Empty(t, batch(0, size, 128, 30))
}

// The write bound lets rate keys a second through, up to burst at once, and
// no more: the rest waits.
func TestRateBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newRateBound(100, 100, t0)
	require.Equal(t, 100, b.take(t0, 10_000), "a full bucket: one burst")
	require.Equal(t, 0, b.take(t0, 10_000))
	require.Equal(t, 50, b.take(t0.Add(500*time.Millisecond), 10_000))
	require.Equal(t, 3, b.take(t0.Add(time.Second), 3))
	require.Equal(t, 47, b.take(t0.Add(time.Second), 10_000), "what was not taken is left")
	require.Equal(t, 100, b.take(t0.Add(time.Hour), 10_000), "never more than a burst")

	// Over 10s of polls every second asking for 10k keys, 100/s go through.
	total := 0
	for i := 1; i <= 10; i++ {
		total += b.take(t0.Add(time.Hour+time.Duration(i)*time.Second), 10_000)
	}
	require.Equal(t, 1000, total)
}

func TestNodesOf(t *testing.T) {
	m := map[string]int{}
	for i := range 3 {
		m[fmt.Sprint(2-i)] = i
	}
	require.Equal(t, []string{"0", "1", "2"}, nodesOf(m))
}
