package source

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

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
	writeFile(t, dir, "envoy.yaml", "node: {id: e, cluster: c}\nadmin: {}\ndynamic_resources: {ads_config: {api_type: GRPC}}\n")

	cfg, err := readConfigDir(dir, defaultLimits)
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

	_, err := readConfigDir(dir, defaultLimits)
	require.Error(t, err)
	var le *resources.LoadError
	require.ErrorAs(t, err, &le)
	lines := ErrorLines(err)
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], filepath.Join(dir, "bad.yaml"))
	assert.Contains(t, lines[0], `CDS "api"`)
	assert.Contains(t, lines[0], "connect_timeout")
	assert.Contains(t, lines[1], filepath.Join(dir, "typo.yaml"))
}

// A client's bootstrap (one that fetches its config from a server) is skipped;
// an Envoy static config is refused, saying what it is: it is not served, and a
// directory holding only one is not "ok" with nothing in it.
func TestConfigDirStaticConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "envoy.yaml", "static_resources:\n  clusters:\n  - name: web\n")
	_, err := readConfigDir(dir, defaultLimits)
	require.Error(t, err)
	lines := ErrorLines(err)
	require.Len(t, lines, 1)
	assert.True(t, strings.HasPrefix(lines[0], filepath.Join(dir, "envoy.yaml")+":1:1: an Envoy static config (top-level static_resources)"), lines[0])
}

// A resource defined twice in one scope is an error naming both files; the same
// name in two scopes is fine.
func TestConfigDirDuplicates(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", cluster("web", "1s"))
	writeFile(t, dir, "other/a.yaml", cluster("web", "1s"))
	_, err := readConfigDir(dir, defaultLimits)
	require.NoError(t, err)

	writeFile(t, dir, "b.yaml", cluster("web", "2s"))
	_, err = readConfigDir(dir, defaultLimits)
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
	var outcomes []Outcome
	src.onReload = func(o Outcome, _ store.Result) { outcomes = append(outcomes, o) }

	res, err := reload(src)
	require.NoError(t, err)
	assert.Equal(t, 2, res.Set)
	v := st.View()
	assert.Equal(t, []string{"default", "team-a"}, v.Scopes())
	webV := v.Table("default", protocol.TypeCluster).Get("web").Version

	// Unchanged: no new revision.
	res, err = reload(src)
	require.NoError(t, err)
	assert.False(t, res.Changed())
	assert.Equal(t, v.Revision(), st.View().Revision())

	// Invalid: the last good config stays, the error is kept for the admin page.
	writeFile(t, dir, "web.yaml", cluster("web", "-5s"))
	_, err = reload(src)
	require.Error(t, err)
	assert.Equal(t, webV, st.View().Table("default", protocol.TypeCluster).Get("web").Version)
	state := src.Status()
	require.NotEmpty(t, state.Errors)
	assert.Contains(t, state.Errors[0], "web.yaml")
	assert.Equal(t, 1, state.Rejected)

	// Fixed, and team-a removed: its scope is emptied in the same commit.
	writeFile(t, dir, "web.yaml", cluster("web", "3s"))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "team-a")))
	res, err = reload(src)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Set)
	assert.Equal(t, 1, res.Deleted)
	v = st.View()
	assert.Equal(t, []string{"default"}, v.Scopes())
	assert.NotEqual(t, webV, v.Table("default", protocol.TypeCluster).Get("web").Version)
	assert.Empty(t, src.Status().Errors)

	// Every file removed: everything is deleted.
	require.NoError(t, os.Remove(filepath.Join(dir, "web.yaml")))
	_, err = reload(src)
	require.NoError(t, err)
	assert.Empty(t, st.View().Scopes())

	assert.Equal(t, []Outcome{Applied, Unchanged, Rejected, Applied, Applied}, outcomes)
}

// The first reload also replaces scopes the store held before (a restored
// snapshot) that the directory does not have.
func TestReloadReplacesScopesAlreadyInStore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	_, err := st.Commit(store.Set("stale", xdstest.Cluster("old")))
	require.NoError(t, err)
	_, err = reload(src)
	require.NoError(t, err)
	assert.Equal(t, []string{"default"}, st.View().Scopes())
}

// A reference to a resource the scope does not define names the file, the
// scope, the referring resource and the missing one; the same name defined in
// another scope does not count, and xdstp names are left alone.
func TestDanglingRefs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "l.json", resourceJSONFile(t, xdstest.Listener("edge", 8080, "missing-route"),
		xdstest.Listener("federated", 8081, "xdstp://other.example/envoy.config.route.v3.RouteConfiguration/r")))
	writeFile(t, dir, "c.yaml", edsCluster("web", "{ads: {}, resource_api_version: V3}"))
	writeFile(t, dir, "team-a/web.yaml", resourceJSONFile(t, xdstest.Endpoints("web", "127.0.0.1:8080")))
	writeFile(t, dir, "team-a/routes.yaml", routes("main", "web"))
	cfg, err := readConfigDir(dir, defaultLimits)
	require.NoError(t, err)
	var got []string
	for _, d := range danglingRefs(cfg, committed(t, cfg)) {
		got = append(got, d.Error())
	}
	assert.Equal(t, []string{
		filepath.Join(dir, "c.yaml") + `: scope "default": CDS "web" refers to EDS "web", which no file of the scope defines`,
		filepath.Join(dir, "l.json") + `: scope "default": LDS "edge" refers to RDS "missing-route", which no file of the scope defines`,
		filepath.Join(dir, "team-a", "routes.yaml") + `: scope "team-a": RDS "main" refers to CDS "web", which no file of the scope defines`,
	}, got)

	// Refused by default, one error a reference; warnings when allowed.
	warnings, err := cfg.checkRefs(committed(t, cfg), false)
	assert.Nil(t, warnings)
	assert.Equal(t, got, ErrorLines(err))
	assert.True(t, HasDangling(err))
	warnings, err = cfg.checkRefs(committed(t, cfg), true)
	require.NoError(t, err)
	assert.Equal(t, got, warnings)
}

// An EDS cluster whose endpoints come from a file or another server's
// api_config_source does not need them in the directory: the client does not ask
// this server for them. Over ADS or self, it does.
func TestDanglingRefsEDSConfigSource(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "path.yaml", edsCluster("from-path", "{path_config_source: {path: /etc/envoy/eds.yaml}, resource_api_version: V3}"))
	writeFile(t, dir, "other.yaml", edsCluster("from-other", "{api_config_source: {api_type: GRPC, transport_api_version: V3, "+
		"grpc_services: [{envoy_grpc: {cluster_name: other-control-plane}}]}, resource_api_version: V3}"))
	writeFile(t, dir, "self.yaml", edsCluster("from-self", "{self: {}, resource_api_version: V3}"))
	cfg, err := readConfigDir(dir, defaultLimits)
	require.NoError(t, err)
	dangling := danglingRefs(cfg, committed(t, cfg))
	require.Len(t, dangling, 1)
	assert.Equal(t, "from-self", dangling[0].From)
	assert.Equal(t, protocol.TypeEndpoint, dangling[0].ToType)

	require.NoError(t, os.Remove(filepath.Join(dir, "self.yaml")))
	_, warnings, err := CheckDir(dir, DirOptions{})
	require.NoError(t, err, "the endpoints of from-path and from-other are not this server's to serve")
	assert.Empty(t, warnings)
}

// A reload whose directory leaves a reference dangling is rejected like an
// invalid one: the last good config stays, and the error, kept for the admin
// page, names the file, the scope and both resources.
func TestReloadRefusesDanglingRefs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	writeFile(t, dir, "routes.yaml", routes("main", "web"))
	src, st := newSource(t, dir)
	var outcomes []Outcome
	src.onReload = func(o Outcome, _ store.Result) { outcomes = append(outcomes, o) }
	_, err := reload(src)
	require.NoError(t, err)
	good := st.View()
	routeV := good.Table("default", protocol.TypeRoute).Get("main").Version

	// A typo in the cluster name: no file defines "wbe".
	writeFile(t, dir, "routes.yaml", routes("main", "wbe"))
	_, err = reload(src)
	require.Error(t, err)
	assert.True(t, HasDangling(err))
	assert.Equal(t, good.Revision(), st.View().Revision(), "nothing committed")
	assert.Equal(t, routeV, st.View().Table("default", protocol.TypeRoute).Get("main").Version)
	state := src.Status()
	assert.Equal(t, []string{filepath.Join(dir, "routes.yaml") + `: scope "default": RDS "main" refers to CDS "wbe", which no file of the scope defines`}, state.Errors)
	assert.Equal(t, 1, state.Rejected)
	assert.Empty(t, state.Warnings)

	// The cluster it meant to name appears: applied.
	writeFile(t, dir, "wbe.yaml", cluster("wbe", "1s"))
	_, err = reload(src)
	require.NoError(t, err)
	assert.NotEqual(t, routeV, st.View().Table("default", protocol.TypeRoute).Get("main").Version)
	assert.Empty(t, src.Status().Errors)
	assert.Equal(t, []Outcome{Applied, Rejected, Applied}, outcomes)
}

// With --allow-dangling, the same reload is applied, and the dangling reference
// is a warning on the admin page.
func TestReloadAllowsDanglingRefs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "routes.yaml", routes("main", "wbe"))
	src, st := newSource(t, dir)
	src.allowDangling = true
	res, err := reload(src)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Set)
	assert.NotNil(t, st.View().Table("default", protocol.TypeRoute).Get("main"))
	state := src.Status()
	assert.Empty(t, state.Errors)
	assert.Equal(t, []string{filepath.Join(dir, "routes.yaml") + `: scope "default": RDS "main" refers to CDS "wbe", which no file of the scope defines`}, state.Warnings)
}

// The example configs stay valid: `leanxds validate` passes on each of them,
// and serve can start from them. A directory holding a Go program
// (examples/embed) is a program, not a config.
func TestExamplesAreValid(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("..", "examples"))
	require.NoError(t, err)
	configs := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join("..", "examples", e.Name(), "main.go")); err == nil {
			continue
		}
		configs++
		t.Run(e.Name(), func(t *testing.T) {
			dir := filepath.Join("..", "examples", e.Name())
			sum, warnings, err := CheckDir(dir, DirOptions{})
			require.NoError(t, err, "an example refers only to what it defines")
			assert.Empty(t, warnings)
			assert.NotZero(t, sum.Resources())
			assert.NotEmpty(t, sum.Bootstraps, "each example ships a client bootstrap")
			cfg, err := readConfigDir(dir, defaultLimits)
			require.NoError(t, err)
			assert.Empty(t, danglingRefs(cfg, committed(t, cfg)), "an example refers only to what it defines")
		})
	}
	assert.GreaterOrEqual(t, configs, 2, "examples/edge and examples/grpc")
}

// The edge example holds what issue and README promise: two listeners with HTTP
// routes, three EDS clusters with their endpoints, and a TLS secret over SDS.
func TestEdgeExampleShape(t *testing.T) {
	cfg, err := readConfigDir(filepath.Join("..", "examples", "edge"), defaultLimits)
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
	var outcomes []Outcome
	src.onReload = func(o Outcome, _ store.Result) { outcomes = append(outcomes, o) }
	_, err := st.Commit(store.SetNamed("default", "restored", xdstest.Cluster("restored")))
	require.NoError(t, err)
	src.KeepRestored()

	_, err = reload(src)
	require.ErrorIs(t, err, ErrEmptyOverSnapshot)
	assert.Equal(t, []string{"default"}, st.View().Scopes())
	assert.False(t, src.Status().Loaded)

	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	_, err = reload(src)
	require.NoError(t, err)
	assert.Nil(t, st.View().Table("default", protocol.TypeCluster).Get("restored"))
	assert.NotNil(t, st.View().Table("default", protocol.TypeCluster).Get("web"))

	require.NoError(t, os.Remove(filepath.Join(dir, "web.yaml")))
	_, err = reload(src)
	require.NoError(t, err)
	assert.Empty(t, st.View().Scopes())
	assert.Equal(t, []Outcome{Rejected, Applied, Applied}, outcomes)
}

// A file larger than --max-file-bytes, or a directory whose files hold more
// than --max-dir-bytes, is refused from its size, before any file is read;
// the error names the path, the size and the limit.
func TestReloadRefusesLargeFilesBeforeReading(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	_, err := reload(src)
	require.NoError(t, err)
	var read []string
	src.afterRead = func(path string) { read = append(read, path) }

	// 64 MiB of nothing (a sparse file: no disk is used).
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(64<<20))
	require.NoError(t, f.Close())
	_, err = reload(src)
	require.Error(t, err)
	assert.Equal(t, []string{big + ": 67108864 bytes, more than the 16777216 of --max-file-bytes: not read"}, ErrorLines(err))
	assert.Empty(t, read, "nothing is read")
	assert.NotNil(t, st.View().Table("default", protocol.TypeCluster).Get("web"), "the last good config is still served")
	assert.Equal(t, ErrorLines(err), src.Status().Errors)

	require.NoError(t, os.Remove(big))
	writeFile(t, dir, "api.yaml", cluster("api", "1s"))
	src.limits = readLimits{fileBytes: 1 << 20, dirBytes: 300}
	_, err = reload(src)
	require.Error(t, err)
	size := int64(len(cluster("web", "1s")) + len(cluster("api", "1s")))
	assert.Equal(t, []string{fmt.Sprintf("%s: the resource files hold %d bytes together, more than the 300 of --max-dir-bytes: nothing read", dir, size)},
		ErrorLines(err))
	assert.Empty(t, read)
}

// A file that grows past --max-file-bytes while it is read is refused without
// reading more than the limit.
func TestReadConfigFilesStopsAtTheLimit(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", cluster("a", "1s"))
	writeFile(t, dir, "b.yaml", cluster("b", "1s"))
	files, _, err := listConfigDir(dir)
	require.NoError(t, err)
	grow := func(path string) {
		if filepath.Base(path) == "a.yaml" {
			writeFile(t, dir, "b.yaml", cluster("b", "1s")+strings.Repeat("# padding\n", 1000))
		}
	}
	_, err = readConfigFiles(dir, files, readLimits{fileBytes: 1000, dirBytes: 1 << 20}, nil, grow)
	require.Error(t, err)
	var tl *tooLargeError
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, filepath.Join(dir, "b.yaml"), tl.path)
	assert.Equal(t, int64(1001), tl.size, "no more than the limit and one byte was read")
	assert.Equal(t, filepath.Join(dir, "b.yaml")+": grew past 1000 bytes (--max-file-bytes) while it was read: not read", tl.Error())
}

// A reload reads no file modified less than the quiet period ago: it is put
// off, with nothing applied or recorded, until the file is old enough.
func TestReloadWaitsForQuietFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	var outcomes []Outcome
	src.onReload = func(o Outcome, _ store.Result) { outcomes = append(outcomes, o) }
	src.quiet.period = time.Hour

	_, err := src.tryReload(false)
	var nq *NotQuietError
	require.ErrorAs(t, err, &nq)
	assert.Equal(t, filepath.Join(dir, "web.yaml"), nq.File)
	assert.False(t, nq.WhileRead)
	assert.InDelta(t, time.Hour.Seconds(), nq.retry.Seconds(), 60, "tried again once the file is an hour old")
	assert.Empty(t, st.View().Scopes(), "nothing read")
	assert.Empty(t, outcomes, "nothing recorded: it is no rejection")
	assert.Equal(t, filepath.Join(dir, "web.yaml"), src.Status().Writing)

	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "web.yaml"), old, old))
	_, err = src.tryReload(false)
	require.NoError(t, err)
	assert.NotNil(t, st.View().Table("default", protocol.TypeCluster).Get("web"))
	assert.Equal(t, []Outcome{Applied}, outcomes)
	assert.Empty(t, src.Status().Writing)
}

// A modification time in the future (a file server whose clock runs ahead)
// does not put reloads off for ever: the files are quiet once their size and
// modification time have not changed for the quiet period.
func TestReloadQuietWithClockSkew(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	future := time.Now().Add(24 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "web.yaml"), future, future))
	src, st := newSource(t, dir)
	now := time.Now()
	src.now = func() time.Time { return now }
	src.quiet.period = time.Second

	_, err := src.tryReload(false)
	var nq *NotQuietError
	require.ErrorAs(t, err, &nq)
	assert.Equal(t, time.Second, nq.retry)
	now = now.Add(time.Second)
	_, err = src.tryReload(false)
	require.NoError(t, err)
	assert.NotNil(t, st.View().Table("default", protocol.TypeCluster).Get("web"))
}

// A file that changes while a reload reads it is not applied: the reload is
// put off and reads it again.
func TestReloadRereadsFileChangedWhileRead(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", cluster("a", "1s"))
	writeFile(t, dir, "b.yaml", clusters(20, "1s"))
	src, st := newSource(t, dir)
	_, err := reload(src)
	require.NoError(t, err)
	before := st.View().Revision()

	// b.yaml is rewritten in place while a.yaml is read: when b.yaml is read it
	// holds the first 3 clusters of a file that will hold 20 again.
	src.afterRead = func(path string) {
		if filepath.Base(path) == "a.yaml" {
			writeFile(t, dir, "b.yaml", clusters(3, "2s"))
		}
	}
	_, err = src.tryReload(false)
	var nq *NotQuietError
	require.ErrorAs(t, err, &nq)
	assert.True(t, nq.WhileRead)
	assert.Equal(t, filepath.Join(dir, "b.yaml"), nq.File)
	assert.Equal(t, before, st.View().Revision(), "nothing applied")

	src.afterRead = nil
	writeFile(t, dir, "b.yaml", clusters(20, "2s"))
	res, err := src.tryReload(false)
	require.NoError(t, err)
	assert.Equal(t, 20, res.Set)
	assert.Zero(t, res.Deleted)
}

// A reload that would delete more than --max-delete-fraction of a type's
// resources in a scope, and at least --delete-guard-min of them, is held back:
// the last good config is still served and the reload is recorded as held
// until it is confirmed, or the files change again.
func TestReloadHoldsMassDeletion(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(20, "1s"))
	src, st := newSource(t, dir)
	var outcomes []Outcome
	src.onReload = func(o Outcome, _ store.Result) { outcomes = append(outcomes, o) }
	_, err := reload(src)
	require.NoError(t, err)
	served := func() int { return st.View().Table("default", protocol.TypeCluster).Len() }

	writeFile(t, dir, "clusters.yaml", clusters(5, "1s"))
	_, err = reload(src)
	var he *HeldError
	require.ErrorAs(t, err, &he)
	assert.Contains(t, err.Error(), `reload held: it would delete 15 of 20 CDS in scope "default" (more than 50% of a type in a scope, and at least 10;`)
	assert.Equal(t, 20, served(), "the last good config is still served")
	held := src.Status().Held
	require.NotNil(t, held)
	assert.Equal(t, []Deletion{{Scope: "default", Type: "CDS", Deleted: 15, Of: 20}}, held.Deletions)

	// Confirmed: applied.
	res, err := src.Reload(context.Background(), true)
	require.NoError(t, err)
	assert.Equal(t, 15, res.Deleted)
	assert.Equal(t, 5, served())
	assert.Nil(t, src.Status().Held)

	// Held again, then the files change again: the new content is checked
	// afresh, and applied, as it deletes little.
	writeFile(t, dir, "clusters.yaml", clusters(20, "1s"))
	_, err = reload(src)
	require.NoError(t, err, "adding is never held")
	writeFile(t, dir, "clusters.yaml", "[]")
	_, err = reload(src)
	require.ErrorAs(t, err, &he)
	writeFile(t, dir, "clusters.yaml", clusters(18, "1s"))
	res, err = reload(src)
	require.NoError(t, err)
	assert.Equal(t, 2, res.Deleted)
	assert.Nil(t, src.Status().Held)

	assert.Equal(t, []Outcome{Applied, Held, Applied, Applied, Held, Applied}, outcomes)
}

// A confirmation applies the content that was held only: if the files changed
// since, the new content is held in its place, to be confirmed in turn.
func TestReloadConfirmsOnlyWhatWasHeld(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(20, "1s"))
	src, st := newSource(t, dir)
	_, err := reload(src)
	require.NoError(t, err)

	writeFile(t, dir, "clusters.yaml", clusters(5, "1s"))
	_, err = reload(src)
	var he *HeldError
	require.ErrorAs(t, err, &he)
	writeFile(t, dir, "clusters.yaml", clusters(2, "1s"))
	_, err = src.Reload(context.Background(), true)
	require.ErrorAs(t, err, &he)
	assert.True(t, he.Changed)
	assert.Contains(t, err.Error(), "the directory changed since the reload was held, so it was not confirmed; reload held: it would delete 18 of 20 CDS")
	assert.Equal(t, 20, st.View().Table("default", protocol.TypeCluster).Len())

	_, err = src.Reload(context.Background(), true)
	require.NoError(t, err)
	assert.Equal(t, 2, st.View().Table("default", protocol.TypeCluster).Len())
}

// OnReload is called with no lock held, whatever the outcome: a program whose
// callback commits to the same store (its own bookkeeping scope) is not
// blocked by a held reload, nor by an applied one.
func TestOnReloadHoldsNoLock(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(20, "1s"))
	src, st := newSource(t, dir)
	var outcomes []Outcome
	src.onReload = func(o Outcome, _ store.Result) {
		outcomes = append(outcomes, o)
		_, err := st.Commit(store.Set("bookkeeping", xdstest.Cluster(fmt.Sprint("reload-", len(outcomes)))))
		assert.NoError(t, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := reload(src)
		if err == nil {
			writeFile(t, dir, "clusters.yaml", clusters(2, "1s"))
			_, err = reload(src)
		}
		done <- err
	}()
	select {
	case err := <-done:
		var he *HeldError
		require.ErrorAs(t, err, &he)
	case <-time.After(10 * time.Second):
		t.Fatal("a reload did not return: OnReload was called under the store's commit lock")
	}
	assert.Equal(t, []Outcome{Applied, Held}, outcomes)
	assert.Equal(t, 2, st.View().Table("bookkeeping", protocol.TypeCluster).Len())
}

// The guard counts per type and per scope: a small config is reshaped freely
// (fewer deletions than --delete-guard-min), a scope removed whole counts as
// all of its resources deleted, and --max-delete-fraction 1 turns it off.
func TestDeleteGuardThresholds(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(4, "1s"))
	writeFile(t, dir, "team-a/clusters.yaml", clusters(12, "1s"))
	src, st := newSource(t, dir)
	_, err := reload(src)
	require.NoError(t, err)

	writeFile(t, dir, "clusters.yaml", clusters(1, "1s"))
	_, err = reload(src)
	require.NoError(t, err, "3 of 4 deleted: fewer than --delete-guard-min")

	require.NoError(t, os.RemoveAll(filepath.Join(dir, "team-a")))
	_, err = reload(src)
	var he *HeldError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, []Deletion{{Scope: "team-a", Type: "CDS", Deleted: 12, Of: 12}}, he.Held.Deletions)
	assert.True(t, st.View().HasScope("team-a"))

	src.guard.fraction = 1
	_, err = reload(src)
	require.NoError(t, err)
	assert.False(t, st.View().HasScope("team-a"))
}

// A reload parses only the files whose bytes changed since the last one: an
// unchanged file's resources are those parsed before, a changed file's are
// parsed anew, and a file removed is dropped from what is kept.
func TestReloadParsesChangedFilesOnly(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", cluster("a", "1s"))
	writeFile(t, dir, "b.yaml", cluster("b", "1s"))
	writeFile(t, dir, "team-a/c.yaml", cluster("c", "1s"))
	src, _ := newSource(t, dir)
	_, err := reload(src)
	require.NoError(t, err)
	message := func(path string) any {
		pf, ok := src.parsed.files[filepath.Join(dir, path)]
		require.True(t, ok, "%s is kept", path)
		require.Len(t, pf.res, 1)
		return pf.res[0].Message
	}
	a, b, c := message("a.yaml"), message("b.yaml"), message("team-a/c.yaml")

	writeFile(t, dir, "b.yaml", cluster("b", "2s"))
	writeFile(t, dir, "team-a/c.yaml", cluster("c", "1s")) // rewritten, same bytes
	res, err := reload(src)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Set)
	assert.Same(t, a, message("a.yaml"), "unchanged: not parsed again")
	assert.Same(t, c, message("team-a/c.yaml"), "the same bytes: not parsed again")
	assert.NotSame(t, b, message("b.yaml"), "changed: parsed again")

	require.NoError(t, os.Remove(filepath.Join(dir, "a.yaml")))
	_, err = reload(src)
	require.NoError(t, err)
	assert.Len(t, src.parsed.files, 2)

	// Bytes that do not parse are reported on every reload.
	writeFile(t, dir, "bad.yaml", cluster("bad", "-1s"))
	for range 2 {
		_, err = reload(src)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "bad.yaml")
	}
}

// committed returns the view of a new store holding cfg.
func committed(t *testing.T, cfg *configDir) store.View {
	t.Helper()
	st := store.New()
	_, err := st.Commit(cfg.changes(nil)...)
	require.NoError(t, err)
	return st.View()
}

// After a rejected reload, the reload that is accepted says in the log that the
// config is good again, even when it applies nothing new (the bad file was put
// back as it was); a reload that follows a good one does not.
func TestReloadGoodAgainLogged(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	var logs bytes.Buffer
	src := NewDir(dir, store.New(), DirOptions{Debounce: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const goodAgain = "config good again"

	_, err := reload(src)
	require.NoError(t, err)
	assert.NotContains(t, logs.String(), goodAgain, "the first load fixes nothing")

	writeFile(t, dir, "web.yaml", cluster("web", "-1s"))
	_, err = reload(src)
	require.Error(t, err)
	assert.NotContains(t, logs.String(), goodAgain)

	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	_, err = reload(src)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(logs.String(), goodAgain), logs.String())
	assert.Contains(t, logs.String(), "changed=false", "the fix restored the config served")

	_, err = reload(src)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(logs.String(), goodAgain), "said once")
}

// A reload that reads what the last committed reload read commits nothing,
// whatever the store holds since: a rollback stands until the files change.
// Files changed and changed back to the committed content are unchanged too
// (and clear the errors of the reload rejected in between); a real change is
// applied over what the store holds.
func TestReloadOfUnchangedDirectoryCommitsNothing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	src, st := newSource(t, dir)
	var outcomes []Outcome
	src.onReload = func(o Outcome, _ store.Result) { outcomes = append(outcomes, o) }
	_, err := reload(src)
	require.NoError(t, err)
	dirV := st.View().Table("default", protocol.TypeCluster).Get("web").Version

	// Another content committed over the directory's, as a rollback does.
	_, err = st.Commit(store.SetNamed("default", "web", xdstest.Cluster("web")))
	require.NoError(t, err)
	rolledBack := st.View()
	require.NotEqual(t, dirV, rolledBack.Table("default", protocol.TypeCluster).Get("web").Version)

	res, err := reload(src)
	require.NoError(t, err)
	assert.False(t, res.Changed())
	assert.Equal(t, rolledBack.Revision(), st.View().Revision(), "nothing committed")
	assert.Equal(t, rolledBack.Table("default", protocol.TypeCluster).Get("web").Version,
		st.View().Table("default", protocol.TypeCluster).Get("web").Version)

	writeFile(t, dir, "web.yaml", cluster("web", "-1s"))
	_, err = reload(src)
	require.Error(t, err)
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	_, err = reload(src)
	require.NoError(t, err)
	assert.Equal(t, rolledBack.Revision(), st.View().Revision(), "the committed content again: nothing committed")
	assert.Empty(t, src.Status().Errors)

	writeFile(t, dir, "web.yaml", cluster("web", "2s"))
	res, err = reload(src)
	require.NoError(t, err)
	assert.True(t, res.Changed())
	assert.NotEqual(t, dirV, st.View().Table("default", protocol.TypeCluster).Get("web").Version)
	assert.Equal(t, []Outcome{Applied, Unchanged, Rejected, Unchanged, Applied}, outcomes)
}

// DirOptions.Commit makes each reload's commit, and sees none for a directory
// that did not change.
func TestReloadCommitsThroughTheHook(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	st := store.New()
	calls := 0
	src := NewDir(dir, st, DirOptions{Debounce: -1, Commit: func(commit func() (store.Result, error)) (store.Result, error) {
		calls++
		return commit()
	}})
	res, err := reload(src)
	require.NoError(t, err)
	assert.True(t, res.Changed())
	assert.Equal(t, 1, calls)
	_, err = reload(src)
	require.NoError(t, err)
	assert.Equal(t, 1, calls, "unchanged since the last commit")
	writeFile(t, dir, "web.yaml", cluster("web", "-1s"))
	_, err = reload(src)
	require.Error(t, err)
	assert.Equal(t, 1, calls, "a directory that does not read is not committed")
	writeFile(t, dir, "web.yaml", cluster("web", "2s"))
	res, err = reload(src)
	require.NoError(t, err)
	assert.True(t, res.Changed(), "the hook returns the commit's result")
	assert.Equal(t, 2, calls)
	assert.Equal(t, "dir "+filepath.Clean(dir), st.View().History("default")[0].Source, "the history names the directory")
}

// A restarted source told the digest of the content last committed
// (AssumeCommitted, from Committed) commits nothing for that content, over a
// restored store that holds something else (a rollback made before the
// restart); other content is applied.
func TestReloadAssumesCommittedContent(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	first, _ := newSource(t, dir)
	assert.Nil(t, first.Committed())
	_, err := reload(first)
	require.NoError(t, err)
	digest := first.Committed()
	require.Len(t, digest, 32)

	src, st := newSource(t, dir)
	_, err = st.Commit(store.SetNamed("default", "rolled-back", xdstest.Cluster("rolled-back")))
	require.NoError(t, err)
	src.KeepRestored()
	src.AssumeCommitted(digest)
	res, err := reload(src)
	require.NoError(t, err)
	assert.False(t, res.Changed())
	assert.NotNil(t, st.View().Table("default", protocol.TypeCluster).Get("rolled-back"), "what the store held stands")
	assert.True(t, src.Status().Loaded)

	writeFile(t, dir, "web.yaml", cluster("web", "2s"))
	res, err = reload(src)
	require.NoError(t, err)
	assert.True(t, res.Changed())
	assert.Nil(t, st.View().Table("default", protocol.TypeCluster).Get("rolled-back"))

	other, st2 := newSource(t, dir)
	other.AssumeCommitted([]byte("short"))
	_, err = reload(other)
	require.NoError(t, err)
	assert.NotNil(t, st2.View().Table("default", protocol.TypeCluster).Get("web"), "a bad digest is ignored")
}
