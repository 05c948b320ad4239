package stream

import (
	"slices"
	"testing"
)

// Streams subscribed to the same names share one interned set, and a change on
// one stream never shows on another.
func TestSubscriptionsShareInternedNames(t *testing.T) {
	var a, b subscription
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
	var c subscription
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
	var d subscription
	d.update([]string{"a", "b", "c"})
	d.update([]string{"a", "a", "b"})
	if d.subscribes("c") {
		t.Fatal("a list with duplicates kept a name it dropped")
	}
	// R11: a wildcard stays a wildcard only while the list says so.
	var e subscription
	e.update([]string{"*", "a"})
	e.update([]string{"a"})
	if e.wildcard {
		t.Fatal("dropping * kept the wildcard")
	}
}
