package machine

import (
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// Streams subscribed to the same names share one interned set, and a change on
// one stream never shows on another.
func TestSubscriptionsShareInternedNames(t *testing.T) {
	sets := NewCaches().sets
	a, b := subscription{sets: sets}, subscription{sets: sets}
	a.update([]string{"c", "a", "b"}) // unsorted: the general path
	b.update([]string{"a", "b", "c"}) // sorted: adopts a's set
	if a.set == nil || a.set != b.set {
		t.Fatalf("equal subscriptions do not share a set: %p %p", a.set, b.set)
	}
	if got := b.sortedNames(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("sorted names %v", got)
	}

	// An ACK repeating the list changes nothing.
	if added, on := b.update([]string{"a", "b", "c"}); added != nil || on {
		t.Fatalf("repeated list: added %v, wildcard on %v", added, on)
	}
	// The same names in another order are still the same set.
	if added, _ := b.update([]string{"c", "b", "a"}); len(added) != 0 {
		t.Fatalf("reordered list: added %v", added)
	}

	// R9: a grown list reports the new name; the other stream is untouched.
	added, _ := b.update([]string{"a", "b", "c", "d"})
	if !slices.Equal(added, []string{"d"}) {
		t.Fatalf("added %v, want [d]", added)
	}
	if a.subscribes("d") || !b.subscribes("d") {
		t.Fatal("a change of one subscription showed on the other")
	}

	// Delta subscribe and unsubscribe copy the shared set before changing it.
	c := subscription{sets: sets}
	c.update([]string{"a", "b", "c"})
	c.subscribe([]string{"e"}, false)
	c.unsubscribe([]string{"a"})
	if !a.subscribes("a") || a.subscribes("e") {
		t.Fatal("a delta change of one subscription showed on another")
	}
	if got := c.sortedNames(); !slices.Equal(got, []string{"b", "c", "e"}) {
		t.Fatalf("delta subscription %v", got)
	}

	// A list with duplicates is not mistaken for the set it resembles (S4 exact list).
	d := subscription{sets: sets}
	d.update([]string{"a", "b", "c"})
	d.update([]string{"a", "a", "b"})
	if d.subscribes("c") {
		t.Fatal("a list with duplicates kept a name it dropped")
	}
	// R11: a wildcard stays a wildcard only while the list says so.
	e := subscription{sets: sets}
	e.update([]string{"*", "a"})
	e.update([]string{"a"})
	if e.wildcard {
		t.Fatal("dropping * kept the wildcard")
	}

	// The machines of another server (other Caches) share nothing with these.
	other := subscription{sets: NewCaches().sets}
	other.update([]string{"a", "b", "c"})
	if other.set == nil || other.set == b.set || other.set == c.set {
		t.Fatalf("two caches share a set: %p", other.set)
	}
}

// A memo answers each question once, keeps none of the tables and sets it
// answers about alive, watches each table once however often its answers come
// and go, and forgets them with the table.
func TestSharedAnswersLeaveWithTheirTable(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set("s", xdstest.Cluster("a")))
	require.NoError(t, err)
	cur := st.View().Table("s", protocol.TypeCluster)

	var m memo[int]
	computed := 0
	answer := func(q question) int { return m.get(q, func() int { computed++; return computed }) }
	require.Equal(t, 1, answer(question{cur: cur}))
	require.Equal(t, 1, answer(question{cur: cur}), "answered again")
	sets := make([]*nameSet, maxAnswers+10)
	for i := range sets {
		sets[i] = &nameSet{sorted: []string{"a"}}
		answer(question{set: sets[i], cur: cur})
	}
	answers, tables := m.size()
	require.LessOrEqual(t, answers, maxAnswers)
	require.Equal(t, 1, tables, "one table, watched once")

	_, err = st.Commit(store.ReplaceScope("s"))
	require.NoError(t, err)
	cur = nil
	settle(t, "the answers about a replaced table are gone", func() bool {
		answers, tables := m.size()
		return answers == 0 && tables == 0
	})
	runtime.KeepAlive(sets)
}
