package source

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/protocol"
)

// Run without Load loads the directory, then applies its changes.
func TestRunLoadsFirst(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	setDebounce(src, 20*time.Millisecond)
	outcomes, _ := recordOutcomes(src)
	startRun(t, src)
	eventually(t, "the load", func() bool { return len(outcomes()) > 0 })
	assert.Equal(t, []Outcome{Applied}, outcomes())
	assert.NotEmpty(t, versionOf(st, "default", "web"))
	assert.True(t, src.Status().Loaded)

	writeFile(t, dir, "api.yaml", cluster("api", "1s"))
	eventually(t, "the change to be applied", func() bool { return versionOf(st, "default", "api") != "" })
}

// A change made between Load and Run, which no watch saw, is applied once Run
// starts, even one that keeps the file's size and time (cp -p, rsync -t, tar):
// Run reads the directory once more.
func TestRunAppliesChangeSinceLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	setDebounce(src, 20*time.Millisecond)
	past := time.Now().Add(-time.Minute)
	require.NoError(t, chtimes(dir, "web.yaml", past))
	_, err := src.Load(context.Background())
	require.NoError(t, err)
	v1 := versionOf(st, "default", "web")

	writeFile(t, dir, "web.yaml", cluster("web", "2s")) // the same size
	require.NoError(t, chtimes(dir, "web.yaml", past))  // and time
	outcomes, _ := recordOutcomes(src)
	startRun(t, src)
	eventually(t, "the change made before Run to be reloaded", func() bool { return len(outcomes()) > 0 })
	assert.Equal(t, []Outcome{Applied}, outcomes())
	assert.NotEqual(t, v1, versionOf(st, "default", "web"))
}

// The options' zero values are the documented defaults; negative values turn
// the quiet period and the guard's minimum off, and the guard itself.
func TestDirOptionsDefaults(t *testing.T) {
	d := NewDir(t.TempDir(), nil, DirOptions{})
	assert.Equal(t, readLimits{fileBytes: 16 << 20, dirBytes: 256 << 20}, d.limits)
	assert.Equal(t, 200*time.Millisecond, d.debounce)
	assert.Equal(t, 200*time.Millisecond, d.quiet.period)
	assert.Equal(t, deleteGuard{fraction: 0.5, min: 10}, d.guard)
	assert.False(t, d.guard.off())

	d = NewDir(t.TempDir(), nil, DirOptions{Debounce: -1, MaxDeleteFraction: -1, DeleteGuardMin: -1, MaxFileBytes: 10, MaxDirBytes: 20})
	assert.Equal(t, readLimits{fileBytes: 10, dirBytes: 20}, d.limits)
	assert.Zero(t, d.debounce)
	assert.Zero(t, d.quiet.period)
	assert.True(t, d.guard.off())
	assert.Zero(t, d.guard.min)
	assert.True(t, NewDir(".", nil, DirOptions{MaxDeleteFraction: 1}).guard.off())
}

// A Status handed out never changes: a later reload makes a new one.
func TestStatusIsAValue(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, _ := newSource(t, dir)
	_, err := reload(src)
	require.NoError(t, err)
	before := src.Status()
	require.Equal(t, map[string]int{"default": 1}, before.Scopes)

	writeFile(t, dir, "bad.yaml", cluster("bad", "-1s"))
	_, err = reload(src)
	require.Error(t, err)
	writeFile(t, dir, "bad.yaml", cluster("api", "1s"))
	_, err = reload(src)
	require.NoError(t, err)

	assert.Equal(t, 0, before.Rejected)
	assert.Empty(t, before.Errors)
	assert.Equal(t, map[string]int{"default": 1}, before.Scopes)
	after := src.Status()
	assert.Equal(t, 1, after.Rejected)
	assert.Equal(t, map[string]int{"default": 2}, after.Scopes)
	assert.Equal(t, 2, after.Resources())
	assert.Equal(t, filepath.Clean(dir), after.Dir)
	assert.Equal(t, 2, src.st.View().Table(DefaultScope, protocol.TypeCluster).Len())
}
