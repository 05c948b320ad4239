package protocol_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/leanxds/leanxds/protocol"
)

// R15: push order puts secrets before their users, clusters before endpoints,
// and listeners before routes.
func TestPushOrderR15(t *testing.T) {
	urls := []string{protocol.TypeRoute, protocol.TypeListener, "type.googleapis.com/x.Unknown", protocol.TypeEndpoint,
		protocol.TypeCluster, protocol.TypeSecret, protocol.TypeVirtualHost, protocol.TypeScopedRoute}
	slices.SortFunc(urls, protocol.PushOrder)
	var short []string
	for _, u := range urls {
		short = append(short, protocol.Short(u))
	}
	assert.Equal(t, []string{"SDS", "CDS", "EDS", "LDS", "RDS", "SRDS", "VHDS", "type.googleapis.com/x.Unknown"}, short)
	assert.Len(t, protocol.Types(), 10)
}

// S1/S2: only the full-state types carry everything in every SotW response.
func TestFullStateS1S2(t *testing.T) {
	for _, ti := range protocol.Types() {
		want := ti.URL == protocol.TypeListener || ti.URL == protocol.TypeCluster || ti.URL == protocol.TypeScopedRoute
		assert.Equal(t, want, protocol.FullState(ti.URL), ti.Short)
	}
	_, ok := protocol.Lookup("type.googleapis.com/x.Unknown")
	assert.False(t, ok)
}

// R1: nonces round-trip; anything else is not one of ours.
func TestNonce(t *testing.T) {
	for _, n := range []uint64{1, 35, 36, 1 << 40, ^uint64(0)} {
		got, ok := protocol.ParseNonce(protocol.FormatNonce(n))
		assert.True(t, ok)
		assert.Equal(t, n, got)
	}
	for _, bad := range []string{"", "not a nonce!", "zzzzzzzzzzzzzzzzzzzz"} {
		_, ok := protocol.ParseNonce(bad)
		assert.False(t, ok, bad)
	}
}

// S3, D8: versions depend on content alone; digests of sets ignore order.
func TestVersionsFromContent(t *testing.T) {
	a, b := protocol.ContentVersion([]byte("abc")), protocol.ContentVersion([]byte("abc"))
	assert.Equal(t, a, b)
	assert.Len(t, a, 16)
	assert.NotEqual(t, a, protocol.ContentVersion([]byte("abd")))
	x, y := protocol.EntryDigest("x", "1"), protocol.EntryDigest("y", "1")
	assert.Equal(t, x^y, y^x)
	assert.NotEqual(t, protocol.EntryDigest("x", "1"), protocol.EntryDigest("x", "2"))
	assert.NotEqual(t, protocol.EntryDigest("ab", "c"), protocol.EntryDigest("a", "bc"), "name and version are separated")
	assert.Len(t, (x ^ y).Version(), 16)
}
