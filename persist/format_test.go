package persist_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

var written = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	st := storeWith(t, sample("a")...)
	v := st.View()
	data, h := persist.Encode(v, persist.Meta{WrittenAt: written, Revision: 42, Writer: "host-a/1"})

	snap, err := persist.Decode(data)
	require.NoError(t, err)
	assert.True(t, snap.WrittenAt.Equal(written))
	assert.Equal(t, uint64(42), snap.Revision)
	assert.Equal(t, "host-a/1", snap.Writer)
	assert.True(t, snap.CommittedAt.Equal(v.CommittedAt()))
	assert.Equal(t, h.ContentDigest, snap.ContentDigest)
	assert.Equal(t, persist.ContentDigest(v), snap.ContentDigest)
	assert.Equal(t, 18, snap.Resources)

	// Every scope, type and entry, in order: scopes by name, types in push order
	// (R15), entries by name.
	require.Equal(t, []string{"edge", "mesh"}, []string{snap.Scopes[0].Name, snap.Scopes[1].Name})
	n := 0
	for _, sc := range snap.Scopes {
		var order []string
		for typeURL, tab := range v.Tables(sc.Name) {
			order = append(order, typeURL)
			var got *persist.Table
			for i := range sc.Tables {
				if sc.Tables[i].TypeURL == typeURL {
					got = &sc.Tables[i]
				}
			}
			require.NotNil(t, got, "%s: table %s missing", sc.Name, typeURL)
			require.Len(t, got.Entries, tab.Len())
			for i, e := range tab.Sorted() {
				assert.Equal(t, e.Name, got.Entries[i].Name)
				assert.Equal(t, e.Version, got.Entries[i].Version)
				assert.True(t, bytes.Equal(e.Body, got.Entries[i].Body))
				n++
			}
		}
		var have []string
		for _, tab := range sc.Tables {
			have = append(have, tab.TypeURL)
		}
		assert.Equal(t, order, have, "tables of %s in push order", sc.Name)
	}
	assert.Equal(t, 18, n)

	// The store revisions of each table are recorded.
	require.Len(t, snap.Tables, len(snap.Scopes[0].Tables)+len(snap.Scopes[1].Tables))
	for _, tr := range snap.Tables {
		assert.Equal(t, v.Table(tr.Scope, tr.TypeURL).Revision(), tr.Revision, "%s %s", tr.Scope, tr.TypeURL)
		assert.NotZero(t, tr.Revision)
	}
}

func TestEncodeEmptyStore(t *testing.T) {
	data, h := persist.Encode(store.New().View(), persist.Meta{WrittenAt: written})
	snap, err := persist.Decode(data)
	require.NoError(t, err)
	assert.Empty(t, snap.Scopes)
	assert.Zero(t, snap.Resources)
	assert.True(t, snap.CommittedAt.IsZero())
	assert.Equal(t, h.ContentDigest, snap.ContentDigest)
}

// Encoding is deterministic: the same content and metadata give the same bytes,
// and the same content gives the same content digest however it was committed.
func TestEncodeDeterministic(t *testing.T) {
	a := storeWith(t, sample("a")...)
	meta := persist.Meta{WrittenAt: written, Revision: 7, Writer: "w"}
	first, _ := persist.Encode(a.View(), meta)
	second, _ := persist.Encode(a.View(), meta)
	assert.Equal(t, first, second)

	// The same content reached another way: other commit order, other revisions.
	changes := sampleSets("a")
	b := store.New()
	for i := len(changes) - 1; i >= 0; i-- {
		commit(t, b, changes[i])
	}
	commit(t, b, store.Set("edge", xdstest.Cluster("tmp")))
	commit(t, b, store.Delete("edge", protocol.TypeCluster, "tmp"))
	require.NotEqual(t, a.View().Revision(), b.View().Revision())
	_, hb := persist.Encode(b.View(), meta)
	_, ha := persist.Encode(a.View(), meta)
	assert.Equal(t, ha.ContentDigest, hb.ContentDigest)
	assert.Equal(t, persist.ContentDigest(a.View()), persist.ContentDigest(b.View()))

	// Other content, other digest.
	c := storeWith(t, sample("c")...)
	assert.NotEqual(t, persist.ContentDigest(a.View()), persist.ContentDigest(c.View()))
}

func TestDecodeChecks(t *testing.T) {
	valid, _ := persist.Encode(storeWith(t, sample("a")...).View(), persist.Meta{WrittenAt: written})
	flip := func(i int) []byte {
		b := bytes.Clone(valid)
		b[i] ^= 0x40
		return b
	}
	version3 := bytes.Clone(valid)
	binary.BigEndian.PutUint32(version3[8:], 3)
	hugeLen := bytes.Clone(valid)
	binary.BigEndian.PutUint64(hugeLen[12:], 1<<50)

	cases := []struct {
		name  string
		data  []byte
		check error
		says  string
	}{
		{"empty", nil, persist.ErrMagic, "magic check failed"},
		{"not a snapshot", []byte("hello, world: some other file"), persist.ErrMagic, "not a leanxds snapshot"},
		{"altered magic", flip(0), persist.ErrMagic, "magic check failed"},
		{"future format", version3, persist.ErrFormatVersion, "format version 3"},
		{"truncated in the magic", valid[:5], persist.ErrLength, "truncated"},
		{"truncated in the header", valid[:15], persist.ErrLength, "truncated"},
		{"truncated by one byte", valid[:len(valid)-1], persist.ErrLength, "truncated"},
		{"truncated by half", valid[:len(valid)/2], persist.ErrLength, "truncated"},
		{"trailing bytes", append(bytes.Clone(valid), 0), persist.ErrLength, "1 bytes too many"},
		{"absurd length", hugeLen, persist.ErrLength, "length check failed"},
		{"altered body", flip(len(valid) / 2), persist.ErrChecksum, "checksum check failed"},
		{"altered checksum", flip(len(valid) - 1), persist.ErrChecksum, "was altered"},
		{"content not matching its digest", reseal(t, valid, false, func(c []byte) []byte {
			c[len(c)-1] ^= 1
			return c
		}), persist.ErrBody, "does not match the digest"},
		{"unparsable content", reseal(t, valid, true, func(c []byte) []byte {
			return append(c, 0xff)
		}), persist.ErrBody, "body check failed"},
	}
	checks := []error{persist.ErrMagic, persist.ErrFormatVersion, persist.ErrLength, persist.ErrChecksum, persist.ErrBody}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap, err := persist.Decode(c.data)
			require.Error(t, err)
			assert.Nil(t, snap)
			assert.ErrorIs(t, err, c.check)
			assert.Contains(t, err.Error(), c.says)
			for _, other := range checks {
				if other != c.check {
					assert.False(t, errors.Is(err, other), "also %v", other)
				}
			}
		})
	}
}

// A snapshot whose content was rewritten consistently (digest and checksum
// fixed) decodes: the checks protect against damage, and the content section
// is what the digest covers.
func TestResealedSnapshotDecodes(t *testing.T) {
	valid, _ := persist.Encode(storeWith(t, sample("a")...).View(), persist.Meta{WrittenAt: written})
	same := reseal(t, valid, true, func(c []byte) []byte { return c })
	assert.Equal(t, valid, same)
	_, err := persist.Decode(same)
	require.NoError(t, err)
}
