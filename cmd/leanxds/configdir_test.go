package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

func cluster(name, timeout string) string {
	return "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: " + name +
		"\ntype: EDS\nconnect_timeout: " + timeout + "\neds_cluster_config:\n  eds_config: {ads: {}, resource_api_version: V3}\n"
}

func newSource(t *testing.T, dir string) (*configSource, *store.Store) {
	t.Helper()
	st := store.New()
	return newConfigSource(dir, st, slog.New(slog.NewTextHandler(io.Discard, nil))), st
}

// Files directly in the directory form the default scope, a subdirectory's files
// the scope named after it; other files, hidden names and bootstraps are skipped.
func TestConfigDirScopes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	writeFile(t, dir, "team-a/api.yml", cluster("api", "2s"))
	writeFile(t, dir, "team-a/.api.yml.swp", "garbage")
	writeFile(t, dir, "team-b/db.json", `{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "db", "type": "EDS",
		"eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}}`)
	writeFile(t, dir, "README.md", "not a resource")
	writeFile(t, dir, "team-a/nested/ignored.yaml", "not read: deeper directories are not scopes")
	writeFile(t, dir, "envoy.yaml", "node: {id: e, cluster: c}\nadmin: {}\n")

	cfg, err := readConfigDir(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"default", "team-a", "team-b"}, cfg.scopeNames())
	assert.Equal(t, 3, cfg.count(""))
	assert.Equal(t, "web", cfg.scopes["default"][0].Name)
	assert.Equal(t, "api", cfg.scopes["team-a"][0].Name)
	assert.Equal(t, "db", cfg.scopes["team-b"][0].Name)
	assert.Equal(t, []string{filepath.Join(dir, "envoy.yaml")}, cfg.bootstraps)
}

// Any invalid file rejects the whole directory with the file, resource and field;
// a file that is neither resources nor a bootstrap is an error too.
func TestConfigDirRejectsInvalid(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.yaml", cluster("web", "1s"))
	writeFile(t, dir, "bad.yaml", cluster("api", "-1s"))
	writeFile(t, dir, "typo.yaml", "name: oops\n")

	_, err := readConfigDir(dir)
	require.Error(t, err)
	var le *resources.LoadError
	require.ErrorAs(t, err, &le)
	lines := errorLines(err)
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], filepath.Join(dir, "bad.yaml"))
	assert.Contains(t, lines[0], `CDS "api"`)
	assert.Contains(t, lines[0], "connect_timeout")
	assert.Contains(t, lines[1], filepath.Join(dir, "typo.yaml"))
}

// A resource defined twice in one scope is an error naming both files; the same
// name in two scopes is fine.
func TestConfigDirDuplicates(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", cluster("web", "1s"))
	writeFile(t, dir, "other/a.yaml", cluster("web", "1s"))
	_, err := readConfigDir(dir)
	require.NoError(t, err)

	writeFile(t, dir, "b.yaml", cluster("web", "2s"))
	_, err = readConfigDir(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, "b.yaml"))
	assert.Contains(t, err.Error(), "already defined in "+filepath.Join(dir, "a.yaml"))
}

// A reload commits the whole directory at once; an invalid one changes nothing;
// an unchanged one commits nothing (dedup); removing a subdirectory empties its
// scope, and removing a file deletes its resources.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	writeFile(t, dir, "team-a/api.yaml", cluster("api", "1s"))
	src, st := newSource(t, dir)
	var outcomes []string
	src.onReload = func(o string, _ store.Result) { outcomes = append(outcomes, o) }

	res, err := src.Reload()
	require.NoError(t, err)
	assert.Equal(t, 2, res.Set)
	v := st.View()
	assert.Equal(t, []string{"default", "team-a"}, v.Scopes())
	webV := v.Table("default", protocol.TypeCluster).Get("web").Version

	// Unchanged: no new revision.
	res, err = src.Reload()
	require.NoError(t, err)
	assert.False(t, res.Changed())
	assert.Equal(t, v.Revision(), st.View().Revision())

	// Invalid: the last good config stays, the error is kept for the admin page.
	writeFile(t, dir, "web.yaml", cluster("web", "-5s"))
	_, err = src.Reload()
	require.Error(t, err)
	assert.Equal(t, webV, st.View().Table("default", protocol.TypeCluster).Get("web").Version)
	state := src.State()
	require.NotEmpty(t, state.Errors)
	assert.Contains(t, state.Errors[0], "web.yaml")
	assert.Equal(t, 1, state.Rejected)

	// Fixed, and team-a removed: its scope is emptied in the same commit.
	writeFile(t, dir, "web.yaml", cluster("web", "3s"))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "team-a")))
	res, err = src.Reload()
	require.NoError(t, err)
	assert.Equal(t, 1, res.Set)
	assert.Equal(t, 1, res.Deleted)
	v = st.View()
	assert.Equal(t, []string{"default"}, v.Scopes())
	assert.NotEqual(t, webV, v.Table("default", protocol.TypeCluster).Get("web").Version)
	assert.Empty(t, src.State().Errors)

	// Every file removed: everything is deleted.
	require.NoError(t, os.Remove(filepath.Join(dir, "web.yaml")))
	_, err = src.Reload()
	require.NoError(t, err)
	assert.Empty(t, st.View().Scopes())

	assert.Equal(t, []string{reloadApplied, reloadUnchanged, reloadRejected, reloadApplied, reloadApplied}, outcomes)
}

// The first reload also replaces scopes the store held before (a restored
// snapshot) that the directory does not have.
func TestReloadReplacesScopesAlreadyInStore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	_, err := st.Commit(store.Set("stale", xdstest.Cluster("old")))
	require.NoError(t, err)
	_, err = src.Reload()
	require.NoError(t, err)
	assert.Equal(t, []string{"default"}, st.View().Scopes())
}

// References to resources the scope does not define are warned about, not
// rejected; xdstp names are left alone.
func TestDanglingRefs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "l.json", resourceJSONFile(t, xdstest.Listener("edge", 8080, "missing-route")))
	writeFile(t, dir, "c.yaml", cluster("web", "1s"))
	cfg, err := readConfigDir(dir)
	require.NoError(t, err)
	warnings := cfg.danglingRefs()
	require.Len(t, warnings, 2)
	assert.Contains(t, warnings[0], `EDS "web"`) // the cluster's endpoints
	assert.Contains(t, warnings[1], `LDS "edge" refers to RDS "missing-route"`)
}

// The examples stay valid: `leanxds validate` passes on each of them, and serve
// can start from them.
func TestExamplesAreValid(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("..", "..", "examples"))
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			dir := filepath.Join("..", "..", "examples", e.Name())
			cfg, err := checkConfigDir(dir)
			require.NoError(t, err)
			assert.NotZero(t, cfg.count(""))
			assert.Empty(t, cfg.danglingRefs(), "an example refers only to what it defines")
			assert.NotEmpty(t, cfg.bootstraps, "each example ships a client bootstrap")
		})
	}
}

// The edge example holds what issue and README promise: two listeners with HTTP
// routes, three EDS clusters with their endpoints, and a TLS secret over SDS.
func TestEdgeExampleShape(t *testing.T) {
	cfg, err := checkConfigDir(filepath.Join("..", "..", "examples", "edge"))
	require.NoError(t, err)
	count := map[string]int{}
	for _, r := range cfg.scopes["default"] {
		count[protocol.Short(r.TypeURL)]++
	}
	assert.Equal(t, map[string]int{"LDS": 2, "RDS": 2, "CDS": 3, "EDS": 3, "SDS": 1}, count)
}

// While the store holds a snapshot restored at start, a directory without
// resources does not replace it (an unmounted volume is no config); once the
// directory has been applied, emptying it empties the store as usual.
func TestReloadKeepsRestoredSnapshotOverEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	src, st := newSource(t, dir)
	var outcomes []string
	src.onReload = func(o string, _ store.Result) { outcomes = append(outcomes, o) }
	_, err := st.Commit(store.SetNamed("default", "restored", xdstest.Cluster("restored")))
	require.NoError(t, err)
	src.keepSnapshot()

	_, err = src.Reload()
	require.ErrorIs(t, err, errEmptyOverSnapshot)
	assert.Equal(t, []string{"default"}, st.View().Scopes())
	assert.False(t, src.State().Loaded)

	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	_, err = src.Reload()
	require.NoError(t, err)
	assert.Nil(t, st.View().Table("default", protocol.TypeCluster).Get("restored"))
	assert.NotNil(t, st.View().Table("default", protocol.TypeCluster).Get("web"))

	require.NoError(t, os.Remove(filepath.Join(dir, "web.yaml")))
	_, err = src.Reload()
	require.NoError(t, err)
	assert.Empty(t, st.View().Scopes())
	assert.Equal(t, []string{reloadRejected, reloadApplied, reloadApplied}, outcomes)
}
