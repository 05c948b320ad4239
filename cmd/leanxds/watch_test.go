package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

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
	_, err := src.Reload()
	require.NoError(t, err)
	var mu sync.Mutex
	var outcomes []string
	src.onReload = func(o string, _ store.Result) {
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}
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
	return st, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), outcomes...)
	}
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
