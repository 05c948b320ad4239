package source

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// watchSource runs dir's source with the debounce period given, after a first
// reload, and returns the store and the outcomes of the reloads Run made.
func watchSource(t *testing.T, dir string, debounce time.Duration) (*store.Store, func() []Outcome, func() []reloadRecord) {
	t.Helper()
	src, st := newSource(t, dir)
	setDebounce(src, debounce)
	_, err := reload(src)
	require.NoError(t, err)
	outcomes, records := recordOutcomes(src)
	startRun(t, src)
	return st, outcomes, records
}

// An edit is applied after the debounce; a scope created later is watched and
// served; an invalid edit is rejected and the last good config stays.
func TestWatchAppliesChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	st, outcomes, _ := watchSource(t, dir, 20*time.Millisecond)
	v1 := versionOf(st, "default", "web")
	require.NotEmpty(t, v1)

	writeFile(t, dir, "web.yaml", cluster("web", "2s"))
	eventually(t, "the edit to be applied", func() bool { return versionOf(st, "default", "web") != v1 })

	writeFile(t, dir, "team-a/api.yaml", cluster("api", "1s"))
	eventually(t, "the new scope to be served", func() bool { return versionOf(st, "team-a", "api") != "" })
	// A file added to the new scope afterwards is seen too: its directory is watched.
	writeFile(t, dir, "team-a/db.yaml", cluster("db", "1s"))
	eventually(t, "a file of the new scope to be served", func() bool { return versionOf(st, "team-a", "db") != "" })

	v2 := versionOf(st, "default", "web")
	writeFile(t, dir, "web.yaml", cluster("web", "-1s"))
	eventually(t, "the invalid edit to be rejected", func() bool {
		o := outcomes()
		return len(o) > 0 && o[len(o)-1] == Rejected
	})
	assert.Equal(t, v2, versionOf(st, "default", "web"))
}

// Writes closer together than the debounce period make one reload, one
// commit of the three files; the next reload is the next change's.
func TestWatchDebounces(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", cluster("a", "1s"))
	st, outcomes, records := watchSource(t, dir, 400*time.Millisecond)
	rev := st.View().Revision()
	for _, n := range []string{"b", "c", "d"} {
		writeFile(t, dir, n+".yaml", cluster(n, "1s"))
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "the reload", func() bool { return len(outcomes()) > 0 })
	first := records()[0]
	assert.Equal(t, Applied, first.outcome)
	assert.Equal(t, 3, first.res.Set, "one commit for the three files")
	assert.Equal(t, rev+1, first.res.Revision)

	// A later change makes the next reload: none came in between.
	writeFile(t, dir, "e.yaml", cluster("e", "1s"))
	eventually(t, "the next reload", func() bool { return versionOf(st, "default", "e") != "" })
	eventually(t, "its outcome", func() bool { return len(outcomes()) >= 2 })
	assert.Equal(t, []Outcome{Applied, Applied}, outcomes())
	assert.Equal(t, 1, records()[1].res.Set)
	assert.Equal(t, 5, st.View().Table("default", protocol.TypeCluster).Len())
}

// A change of permissions alone (a file made readable) triggers a reload.
func TestWatchReloadsOnPermissionChange(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	_, outcomes, _ := watchSource(t, dir, 20*time.Millisecond)
	require.NoError(t, os.Chmod(filepath.Join(dir, "web.yaml"), 0o600))
	eventually(t, "a reload after the permission change", func() bool { return len(outcomes()) > 0 })
	assert.Equal(t, []Outcome{Unchanged}, outcomes())
}

// testClock is a clock a test sets.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// A file rewritten in place for longer than events can put a reload off
// (maxDebounceWaits) is read only once it is quiet, never half-written: one
// reload applies the whole new file and deletes nothing. The source's clock
// stands still while the file is written, so that it is never old enough to be
// read before the writer is done, however slow the machine.
func TestWatchSlowRewrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "clusters.yaml")
	writeFile(t, dir, "clusters.yaml", clusters(40, "1s"))
	clock := &testClock{t: time.Now().Add(time.Second)}
	src, st := newSource(t, dir)
	src.now = clock.Now
	setDebounce(src, 20*time.Millisecond)
	_, err := reload(src)
	require.NoError(t, err)
	rev := st.View().Revision()
	outcomes, _ := recordOutcomes(src)
	startRun(t, src)

	clock.Set(time.Now())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	start := time.Now()
	for i := range 40 {
		_, err := f.WriteString("- " + strings.ReplaceAll(cluster(fmt.Sprintf("c%d", i), "2s"), "\n", "\n  ") + "\n")
		require.NoError(t, err)
		time.Sleep(6 * time.Millisecond) // a slow writer, never pausing for a debounce period
	}
	require.NoError(t, f.Close())
	require.Greater(t, time.Since(start), maxDebounceWaits*20*time.Millisecond, "the rewrite outlasts what events can put a reload off")
	clock.Set(time.Now().Add(time.Second))

	eventually(t, "the new file to be applied", func() bool { return len(outcomes()) > 0 })
	assert.Equal(t, []Outcome{Applied}, outcomes(), "one reload, of the whole file")
	assert.Equal(t, rev+1, st.View().Revision())
	assert.Equal(t, 40, st.View().Table("default", protocol.TypeCluster).Len())
}

// A directory removed is reported stale, its last good config served; once it
// is back it is watched again and applied.
func TestWatchDirectoryRemovedAndRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	setDebounce(src, 20*time.Millisecond)
	_, err := reload(src)
	require.NoError(t, err)
	startRun(t, src)
	v1 := versionOf(st, "default", "web")

	require.NoError(t, os.RemoveAll(dir))
	eventually(t, "the directory to be reported stale", func() bool { return src.Status().Stale != "" })
	assert.Equal(t, "the directory does not exist", src.Status().Stale)
	assert.False(t, src.Status().StaleSince.IsZero())

	writeFile(t, dir, "web.yaml", cluster("web", "2s"))
	eventually(t, "the recreated directory to be applied", func() bool {
		v := versionOf(st, "default", "web")
		return v != "" && v != v1
	})
	assert.Empty(t, src.Status().Stale)
	writeFile(t, dir, "api.yaml", cluster("api", "1s"))
	eventually(t, "a later change to be applied", func() bool { return versionOf(st, "default", "api") != "" })
}

// A directory missing when the watch starts (a snapshot is served meanwhile)
// is stale until it appears, and applied when it does.
func TestWatchDirectoryMissingAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	src, st := newSource(t, dir)
	setDebounce(src, 20*time.Millisecond)
	startRun(t, src)
	eventually(t, "the directory to be reported stale", func() bool { return src.Status().Stale != "" })

	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	eventually(t, "the directory to be applied", func() bool { return versionOf(st, "default", "web") != "" })
	assert.Empty(t, src.Status().Stale)
}

// A Kubernetes ConfigMap volume updates its files at once: it writes them into
// a new hidden directory, points the ..data link to it and removes the old
// one, while each file is a link through ..data. The swap is applied, and the
// hidden directories are not watched as scopes.
func TestWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	publish := func(version, content string) {
		writeFile(t, dir, version+"/clusters.yaml", content)
		require.NoError(t, os.Symlink(version, filepath.Join(dir, "..data_tmp")))
		require.NoError(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	}
	publish("..2025_01_01_00_00_00.1", cluster("web", "1s"))
	require.NoError(t, os.Symlink("..data/clusters.yaml", filepath.Join(dir, "clusters.yaml")))
	src, st := newSource(t, dir)
	setDebounce(src, 20*time.Millisecond)
	_, err := reload(src)
	require.NoError(t, err)
	watcher := startRun(t, src)
	v1 := versionOf(st, "default", "web")
	require.NotEmpty(t, v1)

	publish("..2025_01_01_00_05_00.2", cluster("web", "2s"))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "..2025_01_01_00_00_00.1")))
	eventually(t, "the swapped file to be applied", func() bool { return versionOf(st, "default", "web") != v1 })
	assert.Equal(t, []string{dir}, watcher.WatchList())
}
