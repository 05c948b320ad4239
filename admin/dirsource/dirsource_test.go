package dirsource_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/admin/dirsource"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
)

func writeCluster(t *testing.T, dir, name, timeout string) {
	t.Helper()
	y := fmt.Sprintf(`"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: %s
type: STATIC
connect_timeout: %s
load_assignment:
  cluster_name: %s
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}
`, name, timeout, name)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(y), 0o644))
}

// Every outcome of a reload reaches the admin server as the source decided it,
// and the status the pages show is the source's.
func TestReloadOutcomesAndStatus(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		writeCluster(t, dir, fmt.Sprintf("c%d", i), "1s")
	}
	st := store.New()
	src := source.NewDir(dir, st, source.DirOptions{Debounce: -1, DeleteGuardMin: 1})
	var _ admin.Source = dirsource.Of(src)
	var _ admin.Reloader = dirsource.Of(src)
	ctx := context.Background()

	r := dirsource.Of(src).Reload(ctx, false)
	assert.Equal(t, admin.ReloadApplied, r.Outcome)
	assert.Equal(t, 4, r.Set)
	assert.NotZero(t, r.Revision)

	r = dirsource.Of(src).Reload(ctx, false)
	assert.Equal(t, admin.ReloadUnchanged, r.Outcome)

	// A bad file is refused with its path; the last good config stays.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("name: [unclosed"), 0o644))
	r = dirsource.Of(src).Reload(ctx, false)
	assert.Equal(t, admin.ReloadRejected, r.Outcome)
	require.NotEmpty(t, r.Errors)
	assert.Contains(t, r.Errors[0], "bad.yaml")
	s := dirsource.Of(src).SourceStatus()
	assert.Equal(t, dir, s.Dir)
	assert.True(t, s.Loaded)
	assert.Equal(t, 1, s.Rejected)
	assert.Equal(t, 4, s.Scopes[source.DefaultScope])
	require.NoError(t, os.Remove(filepath.Join(dir, "bad.yaml")))

	// Deleting three of four clusters is held until confirmed.
	for i := 1; i < 4; i++ {
		require.NoError(t, os.Remove(filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))))
	}
	r = dirsource.Of(src).Reload(ctx, false)
	assert.Equal(t, admin.ReloadHeld, r.Outcome)
	require.NotNil(t, r.Held)
	require.Len(t, r.Held.Deletions, 1)
	assert.Equal(t, 3, r.Held.Deletions[0].Deleted)
	assert.Equal(t, 4, r.Held.Deletions[0].Of)
	require.NotNil(t, dirsource.Of(src).SourceStatus().Held)

	r = dirsource.Of(src).Reload(ctx, true)
	assert.Equal(t, admin.ReloadApplied, r.Outcome)
	assert.Equal(t, 3, r.Deleted)
	assert.Nil(t, dirsource.Of(src).SourceStatus().Held)
	assert.Equal(t, 1, dirsource.Of(src).SourceStatus().Scopes[source.DefaultScope])
}
