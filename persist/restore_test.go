package persist_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// A store restored from a snapshot holds every entry with the bytes and content
// version it was written with (S3, D8), and a config source that commits the
// same content afterwards changes nothing: no revision, no push.
func TestRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := tempSnapshot(t)
	a := storeWith(t, sample("a")...)
	pa := persist.NewPersister(a, openFile(t, path), persist.Options{Logger: quiet, Writer: "a/1"})
	wrote, err := pa.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)

	b := store.New()
	info, err := persist.Restore(ctx, openFile(t, path), b)
	require.NoError(t, err)
	assert.True(t, info.Found)
	assert.True(t, info.Restored)
	assert.False(t, info.Refused)
	assert.Equal(t, 18, info.Header.Resources)
	assert.Equal(t, 2, info.Scopes)
	assert.Equal(t, "a/1", info.Header.Writer)
	assert.Equal(t, a.View().Revision(), info.Header.Revision)
	assert.Zero(t, info.Mismatched)
	assert.Equal(t, b.View().Revision(), info.StoreRevision)
	assert.Contains(t, info.String(), "restored 18 resources in 2 scopes")
	requireSameContent(t, a.View(), b.View())

	// The config source takes over with the same content: dedup against the
	// restored entries, so nothing changes and no client is sent anything.
	res := commit(t, b, sample("a")...)
	assert.False(t, res.Changed(), "commit of identical content after restore: %+v", res)
	assert.Equal(t, 18, res.Unchanged)
	assert.Equal(t, info.StoreRevision, b.View().Revision())

	// Different content does change it.
	res = commit(t, b, sample("b")...)
	assert.True(t, res.Changed())
	assert.Equal(t, 2, res.Set, "the runtime of each scope changed")
}

// Restore makes the store hold exactly the snapshot: a scope the store held and
// the snapshot does not is emptied.
func TestRestoreReplacesStoreContent(t *testing.T) {
	ctx := context.Background()
	path := tempSnapshot(t)
	a := storeWith(t, sample("a")...)
	_, err := persist.NewPersister(a, openFile(t, path), persist.Options{Logger: quiet}).Persist(ctx)
	require.NoError(t, err)

	b := storeWith(t, store.Set("stale", xdstest.Cluster("old")), store.Set("edge", xdstest.Cluster("extra")))
	_, err = persist.Restore(ctx, openFile(t, path), b)
	require.NoError(t, err)
	assert.False(t, b.View().HasScope("stale"))
	assert.Nil(t, b.View().Table("edge", protocol.TypeCluster).Get("extra"))
	requireSameContent(t, a.View(), b.View())
}

func TestRestoreNoSnapshot(t *testing.T) {
	st := store.New()
	info, err := persist.Restore(context.Background(), openFile(t, tempSnapshot(t)), st)
	require.NoError(t, err)
	assert.False(t, info.Found)
	assert.False(t, info.Restored)
	assert.Zero(t, st.View().Revision(), "the store is untouched")
	assert.Contains(t, info.String(), "no snapshot at file://")
}

// A snapshot that fails its checks is refused with an error naming the check,
// set aside (renamed, bytes intact) and never deleted; the store is untouched;
// the persister then writes the config source's content as a new snapshot.
func TestRestoreRefusesDamagedSnapshot(t *testing.T) {
	valid, _ := persist.Encode(storeWith(t, sample("a")...).View(), persist.Meta{Writer: "w"})
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/3] ^= 0xff
	cases := []struct {
		name  string
		data  []byte
		check error
	}{
		{"corrupt", flipped, persist.ErrChecksum},
		{"truncated", valid[:len(valid)*2/3], persist.ErrLength},
		{"not a snapshot", []byte("{\"resources\": []}\n"), persist.ErrMagic},
		{"empty file", []byte{}, persist.ErrMagic},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			path := tempSnapshot(t)
			require.NoError(t, os.WriteFile(path, c.data, 0o600))

			st := store.New()
			p := persist.NewPersister(st, openFile(t, path), persist.Options{Logger: quiet})
			info, err := p.Restore(ctx)
			require.Error(t, err)
			assert.ErrorIs(t, err, persist.ErrRefused)
			assert.ErrorIs(t, err, c.check)
			assert.True(t, info.Found)
			assert.True(t, info.Refused)
			assert.False(t, info.Restored)
			assert.Zero(t, st.View().Revision(), "a refused snapshot touches nothing")

			// Set aside, never deleted, and the error says where.
			assert.True(t, strings.HasPrefix(info.SetAside, path+".corrupt-"), info.SetAside)
			assert.Contains(t, err.Error(), "kept as "+info.SetAside)
			assert.Contains(t, info.String(), "serving from the config source alone")
			kept, rerr := os.ReadFile(info.SetAside)
			require.NoError(t, rerr)
			assert.Equal(t, c.data, kept)
			_, serr := os.Stat(path)
			assert.True(t, os.IsNotExist(serr))

			// The server starts from the config source alone, and its first
			// snapshot goes where the refused one was; the refused one stays.
			commit(t, st, sample("b")...)
			p.ConfigLoaded()
			wrote, err := p.Persist(ctx)
			require.NoError(t, err)
			assert.True(t, wrote)
			again := store.New()
			_, err = persist.Restore(ctx, openFile(t, path), again)
			require.NoError(t, err)
			requireSameContent(t, st.View(), again.View())
			_, serr = os.Stat(info.SetAside)
			assert.NoError(t, serr)
		})
	}
}

// A snapshot whose checks pass but whose content this build cannot take (an
// unknown type, an undecodable resource) is refused and set aside too.
func TestRestoreRefusesUnusableContent(t *testing.T) {
	ctx := context.Background()
	valid, _ := persist.Encode(storeWith(t, store.Set("s", xdstest.Cluster("web"))).View(), persist.Meta{})
	bad := reseal(t, valid, true, func(c []byte) []byte {
		// Rename the type URL to one no build serves (same length, so every
		// length prefix stays right).
		i := bytes.Index(c, []byte(protocol.TypeCluster))
		require.GreaterOrEqual(t, i, 0)
		copy(c[i:], strings.Replace(protocol.TypeCluster, "Cluster", "Clustex", 1))
		return c
	})
	path := tempSnapshot(t)
	require.NoError(t, os.WriteFile(path, bad, 0o600))
	st := store.New()
	info, err := persist.Restore(ctx, openFile(t, path), st)
	require.Error(t, err)
	assert.ErrorIs(t, err, persist.ErrRefused)
	assert.ErrorIs(t, err, persist.ErrBody)
	assert.Contains(t, err.Error(), "not served by this build")
	assert.True(t, info.Refused)
	assert.FileExists(t, info.SetAside)
	assert.Zero(t, st.View().Revision())
}

// D8: versions are recomputed on restore; one that differs from the recorded
// version is reported (the client holding it will get it again), the resource is
// kept, and the persister writes the snapshot anew.
func TestRestoreReportsVersionMismatch(t *testing.T) {
	ctx := context.Background()
	a := storeWith(t, store.Set("s", xdstest.Cluster("web")), store.Set("s", xdstest.Cluster("api")))
	valid, _ := persist.Encode(a.View(), persist.Meta{Revision: 9})
	webVersion := a.View().Table("s", protocol.TypeCluster).Get("web").Version
	forged := reseal(t, valid, true, func(c []byte) []byte {
		return bytes.Replace(c, []byte(webVersion), []byte("0123456789abcdef"), 1)
	})
	path := tempSnapshot(t)
	require.NoError(t, os.WriteFile(path, forged, 0o600))

	st := store.New()
	p := persist.NewPersister(st, openFile(t, path), persist.Options{Logger: quiet})
	info, err := p.Restore(ctx)
	require.NoError(t, err)
	assert.True(t, info.Restored)
	assert.Equal(t, 1, info.Mismatched)
	assert.Equal(t, []string{"s/CDS/web"}, info.MismatchedNames)
	assert.Contains(t, info.String(), "1 resources re-encode to a new content version")
	requireSameContent(t, a.View(), st.View())

	wrote, err := p.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote, "the snapshot is rewritten with the versions this build serves")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	snap, err := persist.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, persist.ContentDigest(a.View()), snap.ContentDigest)
	assert.Equal(t, uint64(9), snap.Revision, "the lineage revision continues from the restored snapshot")
	_, err = os.Stat(filepath.Join(filepath.Dir(path), "snapshot.bin.1"))
	assert.NoError(t, err, "the forged snapshot is kept as the previous one")
}

// A backend that cannot be read is not a refusal: nothing is set aside, the
// store is untouched, and the status line says the server runs without it.
func TestRestoreUnreadableBackend(t *testing.T) {
	obj := newMemObject()
	_, err := persist.NewPersister(storeWith(t, sample("a")...), obj.client(), persist.Options{Logger: quiet}).Persist(context.Background())
	require.NoError(t, err)
	obj.setDown(true)
	st := store.New()
	info, err := persist.Restore(context.Background(), obj.client(), st)
	require.Error(t, err)
	assert.NotErrorIs(t, err, persist.ErrRefused)
	assert.False(t, info.Found)
	assert.False(t, info.Refused)
	assert.Empty(t, obj.aside)
	assert.Zero(t, st.View().Revision())
	assert.Contains(t, info.String(), "snapshot not restored, serving from the config source alone: reading snapshot mem://snapshot")
}

// A refused snapshot does not leave the server without one when the file
// backend kept previous snapshots: the newest of them that passes its checks is
// restored, Info and the log say which and why each newer one was refused, the
// refused snapshot is set aside, the previous ones are left as they are, and the
// restored content is put back in place for the next start.
func TestRestoreFallsBackToPreviousSnapshot(t *testing.T) {
	ctx := context.Background()
	path := tempSnapshot(t)
	// Three writes: snapshot.bin.2 holds variant a, snapshot.bin.1 b, snapshot.bin c.
	src := store.New()
	p := persist.NewPersister(src, openFile(t, path), persist.Options{Logger: quiet})
	p.ConfigLoaded()
	for _, variant := range []string{"a", "b", "c"} {
		commit(t, src, sample(variant)...)
		wrote, err := p.Persist(ctx)
		require.NoError(t, err)
		require.True(t, wrote)
	}
	current, err := os.ReadFile(path)
	require.NoError(t, err)
	current[len(current)/2] ^= 0xff
	require.NoError(t, os.WriteFile(path, current, 0o600))
	first, err := os.ReadFile(path + ".1")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".1", first[:len(first)/2], 0o600))

	var logs bytes.Buffer
	st := store.New()
	restorer := persist.NewPersister(st, openFile(t, path), persist.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	info, err := restorer.Restore(ctx)
	require.NoError(t, err)
	assert.True(t, info.Restored)
	assert.True(t, info.Refused, "the current snapshot was refused")
	assert.Equal(t, "file://"+path+".2", info.From)
	require.Len(t, info.Refusals, 2)
	assert.Contains(t, info.Refusals[0], "file://"+path+": checksum check failed")
	assert.Contains(t, info.Refusals[0], "kept as "+info.SetAside)
	assert.Contains(t, info.Refusals[1], "file://"+path+".1: length check failed")
	requireSameContent(t, storeWith(t, sample("a")...).View(), st.View())
	assert.Contains(t, info.String(), "from file://"+path+".2 ")
	assert.Contains(t, info.String(), "newer snapshots refused: file://"+path+": checksum check failed")

	line := logLine(t, &logs, "snapshot refused; restored the newest previous snapshot that passes its checks")
	require.NotNil(t, line, logs.String())
	assert.Equal(t, "file://"+path+".2", line["from"])
	assert.Len(t, line["refused"], 2)
	assert.Equal(t, info.SetAside, line["set_aside"])

	// The refused snapshot is kept aside; the previous ones are untouched.
	kept, err := os.ReadFile(info.SetAside)
	require.NoError(t, err)
	assert.Equal(t, current, kept)
	now1, err := os.ReadFile(path + ".1")
	require.NoError(t, err)
	assert.Equal(t, first[:len(first)/2], now1)

	// The restored content is back in place: the next start restores it from
	// the snapshot itself.
	again := store.New()
	info, err = persist.Restore(ctx, openFile(t, path), again)
	require.NoError(t, err)
	assert.Equal(t, "file://"+path, info.From)
	assert.Empty(t, info.Refusals)
	requireSameContent(t, st.View(), again.View())

	// Without a current snapshot nothing is restored, though previous ones
	// exist: removing the snapshot is how to start from the config alone.
	require.NoError(t, os.Remove(path))
	none := store.New()
	info, err = persist.Restore(ctx, openFile(t, path), none)
	require.NoError(t, err)
	assert.False(t, info.Found)
	assert.Zero(t, none.View().Revision())
}

// When the previous snapshots fail their checks too, the snapshot is refused
// and the error says why each was.
func TestRestoreRefusesWhenNoPreviousSnapshotPasses(t *testing.T) {
	ctx := context.Background()
	path := tempSnapshot(t)
	require.NoError(t, os.WriteFile(path, []byte("not a snapshot"), 0o600))
	require.NoError(t, os.WriteFile(path+".2", []byte("LXDSSNAP"), 0o600))
	st := store.New()
	info, err := persist.Restore(ctx, openFile(t, path), st)
	require.Error(t, err)
	assert.ErrorIs(t, err, persist.ErrRefused)
	assert.False(t, info.Restored)
	assert.True(t, info.Refused)
	require.Len(t, info.Refusals, 2)
	assert.Contains(t, info.Refusals[1], "file://"+path+".2: ")
	assert.Contains(t, err.Error(), "no previous snapshot passes its checks: file://"+path+".2: ")
	assert.Zero(t, st.View().Revision())
}

// Restoring a snapshot that differs from the store in one resource per scope
// changes those resources alone: the tables of the other types are the very
// tables the store held (nothing decoded, nothing copied).
func TestRestoreChangesOnlyWhatDiffers(t *testing.T) {
	ctx := context.Background()
	st := storeWith(t, sample("a")...)
	before := st.View()
	want := storeWith(t, sample("b")...)
	data, _ := persist.Encode(want.View(), persist.Meta{})
	path := tempSnapshot(t)
	require.NoError(t, os.WriteFile(path, data, 0o600))

	info, err := persist.Restore(ctx, openFile(t, path), st)
	require.NoError(t, err)
	require.True(t, info.Restored)
	assert.Zero(t, info.Mismatched)
	after := st.View()
	assert.Equal(t, before.Revision()+1, after.Revision())
	requireSameContent(t, want.View(), after)
	for _, scope := range []string{"edge", "mesh"} {
		assert.Same(t, before.Table(scope, protocol.TypeCluster), after.Table(scope, protocol.TypeCluster), scope)
		names, ok := after.Table(scope, protocol.TypeRuntime).ChangedSince(before.Revision())
		require.True(t, ok)
		assert.Equal(t, []string{"rt"}, names, scope)
	}
}

// A resource this build cannot decode refuses the snapshot as a bad body.
func TestRestoreRefusesUndecodableResource(t *testing.T) {
	ctx := context.Background()
	valid, _ := persist.Encode(storeWith(t, store.Set("s", xdstest.Cluster("web"))).View(), persist.Meta{})
	bad := reseal(t, valid, true, func(c []byte) []byte {
		// The cluster's own name field opens its body (the entry's name comes
		// first, with the same bytes): give it an invalid wire type.
		i := bytes.LastIndex(c, []byte("\x0a\x03web"))
		require.GreaterOrEqual(t, i, 0)
		c[i] = 0x07
		return c
	})
	path := tempSnapshot(t)
	require.NoError(t, os.WriteFile(path, bad, 0o600))
	st := store.New()
	info, err := persist.Restore(ctx, openFile(t, path), st)
	require.Error(t, err)
	assert.ErrorIs(t, err, persist.ErrRefused)
	assert.ErrorIs(t, err, persist.ErrBody)
	assert.Contains(t, err.Error(), `undecodable resources: scope "s": CDS "web"`)
	assert.True(t, info.Refused)
	assert.Zero(t, st.View().Revision())
}

// Restore reads names from the snapshot without copying them, but nothing the
// store keeps refers to the snapshot's bytes: they may be reused afterwards.
func TestRestoredStoreOutlivesTheSnapshotBytes(t *testing.T) {
	want := storeWith(t, sample("a")...)
	data, _ := persist.Encode(want.View(), persist.Meta{})
	st := store.New()
	info, err := persist.Restore(context.Background(), fixedSnapshot(data), st)
	require.NoError(t, err)
	require.True(t, info.Restored)
	clear(data)
	requireSameContent(t, want.View(), st.View())
}
