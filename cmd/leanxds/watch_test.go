package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// watchSource runs Watch on dir and returns the store and the outcomes of the
// reloads it made.
func watchSource(t *testing.T, dir string, debounce time.Duration) (*store.Store, func() []string) {
	t.Helper()
	src, st := newSource(t, dir)
	src.quiet.period = debounce
	_, err := src.Reload()
	require.NoError(t, err)
	outcomes := recordOutcomes(src)
	startWatch(t, src, debounce)
	return st, outcomes
}

// recordOutcomes records the outcomes of src's reloads from now on; set it
// before Watch starts.
func recordOutcomes(src *configSource) func() []string {
	var mu sync.Mutex
	var outcomes []string
	src.onReload = func(o string, _ store.Result) {
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), outcomes...)
	}
}

// startWatch runs Watch on src until the test ends, and returns its watcher.
func startWatch(t *testing.T, src *configSource, debounce time.Duration) *fsnotify.Watcher {
	t.Helper()
	w, err := src.newWatcher()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Watch(ctx, w, debounce)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func timeoutOf(st *store.Store, scope, name string) string {
	e := st.View().Table(scope, protocol.TypeCluster).Get(name)
	if e == nil {
		return ""
	}
	return e.Version
}

// An edit is applied after the debounce; a scope created later is watched and
// served; an invalid edit is rejected and the last good config stays.
func TestWatchAppliesChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	st, outcomes := watchSource(t, dir, 20*time.Millisecond)
	v1 := timeoutOf(st, "default", "web")
	require.NotEmpty(t, v1)

	writeFile(t, dir, "web.yaml", cluster("web", "2s"))
	eventually(t, "the edit to be applied", func() bool { return timeoutOf(st, "default", "web") != v1 })

	writeFile(t, dir, "team-a/api.yaml", cluster("api", "1s"))
	eventually(t, "the new scope to be served", func() bool { return timeoutOf(st, "team-a", "api") != "" })
	// A file added to the new scope afterwards is seen too: its directory is watched.
	writeFile(t, dir, "team-a/db.yaml", cluster("db", "1s"))
	eventually(t, "a file of the new scope to be served", func() bool { return timeoutOf(st, "team-a", "db") != "" })

	v2 := timeoutOf(st, "default", "web")
	writeFile(t, dir, "web.yaml", cluster("web", "-1s"))
	eventually(t, "the invalid edit to be rejected", func() bool {
		o := outcomes()
		return len(o) > 0 && o[len(o)-1] == reloadRejected
	})
	assert.Equal(t, v2, timeoutOf(st, "default", "web"))
}

// Writes closer together than the debounce period make one reload.
func TestWatchDebounces(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", cluster("a", "1s"))
	st, outcomes := watchSource(t, dir, 400*time.Millisecond)
	rev := st.View().Revision()
	for _, n := range []string{"b", "c", "d"} {
		writeFile(t, dir, n+".yaml", cluster(n, "1s"))
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "the reload", func() bool { return len(outcomes()) > 0 })
	time.Sleep(500 * time.Millisecond) // room for a second reload, which must not come
	assert.Equal(t, []string{reloadApplied}, outcomes())
	assert.Equal(t, rev+1, st.View().Revision(), "one commit for the three files")
	assert.Equal(t, 4, st.View().Table("default", protocol.TypeCluster).Len())
}

// A change of permissions alone (a file made readable) triggers a reload.
func TestWatchReloadsOnPermissionChange(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	_, outcomes := watchSource(t, dir, 20*time.Millisecond)
	require.NoError(t, os.Chmod(filepath.Join(dir, "web.yaml"), 0o600))
	eventually(t, "a reload after the permission change", func() bool { return len(outcomes()) > 0 })
	assert.Equal(t, []string{reloadUnchanged}, outcomes())
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
	src.quiet.period = 20 * time.Millisecond
	_, err := src.Reload()
	require.NoError(t, err)
	rev := st.View().Revision()
	outcomes := recordOutcomes(src)
	startWatch(t, src, 20*time.Millisecond)

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
	assert.Equal(t, []string{reloadApplied}, outcomes(), "one reload, of the whole file")
	assert.Equal(t, rev+1, st.View().Revision())
	assert.Equal(t, 40, st.View().Table("default", protocol.TypeCluster).Len())
}

// A directory removed is reported stale, its last good config served; once it
// is back it is watched again and applied.
func TestWatchDirectoryRemovedAndRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	src.quiet.period = 20 * time.Millisecond
	_, err := src.Reload()
	require.NoError(t, err)
	startWatch(t, src, 20*time.Millisecond)
	v1 := timeoutOf(st, "default", "web")

	require.NoError(t, os.RemoveAll(dir))
	eventually(t, "the directory to be reported stale", func() bool { return src.State().Stale != "" })
	assert.Equal(t, "the directory does not exist", src.State().Stale)
	assert.False(t, src.State().StaleSince.IsZero())

	writeFile(t, dir, "web.yaml", cluster("web", "2s"))
	eventually(t, "the recreated directory to be applied", func() bool {
		v := timeoutOf(st, "default", "web")
		return v != "" && v != v1
	})
	assert.Empty(t, src.State().Stale)
	writeFile(t, dir, "api.yaml", cluster("api", "1s"))
	eventually(t, "a later change to be applied", func() bool { return timeoutOf(st, "default", "api") != "" })
}

// A directory missing when the watch starts (a snapshot is served meanwhile)
// is stale until it appears, and applied when it does.
func TestWatchDirectoryMissingAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	src, st := newSource(t, dir)
	src.quiet.period = 20 * time.Millisecond
	startWatch(t, src, 20*time.Millisecond)
	eventually(t, "the directory to be reported stale", func() bool { return src.State().Stale != "" })

	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	eventually(t, "the directory to be applied", func() bool { return timeoutOf(st, "default", "web") != "" })
	assert.Empty(t, src.State().Stale)
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
	src.quiet.period = 20 * time.Millisecond
	_, err := src.Reload()
	require.NoError(t, err)
	w := startWatch(t, src, 20*time.Millisecond)
	v1 := timeoutOf(st, "default", "web")
	require.NotEmpty(t, v1)

	publish("..2025_01_01_00_05_00.2", cluster("web", "2s"))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "..2025_01_01_00_00_00.1")))
	eventually(t, "the swapped file to be applied", func() bool { return timeoutOf(st, "default", "web") != v1 })
	assert.Equal(t, []string{dir}, w.WatchList())
}
