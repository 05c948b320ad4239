package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
)

// The snapshot tests run the binary twice on one --snapshot, as a restart
// does (startServe, stop).

// edgeNames are the clusters of examples/edge, and their endpoints' names.
var edgeNames = []string{"api", "payments", "web"}

// S3, D3: a restarted leanxds serves the snapshot its previous run wrote at
// SIGTERM, before (and without) a valid config directory: clients reconnecting
// with the versions they hold are sent nothing, a new client gets the restored
// resources at the same versions, and when the directory becomes valid with the
// same content it takes over without pushing anything. A directory with a
// dangling reference is treated as an invalid one.
func TestBinarySnapshotRestart(t *testing.T) {
	t.Run("file, empty directory", func(t *testing.T) {
		snapshotRestart(t, "file://"+filepath.Join(t.TempDir(), "snapshot.bin"), "")
	})
	t.Run("file, invalid directory", func(t *testing.T) {
		snapshotRestart(t, "file://"+filepath.Join(t.TempDir(), "snapshot.bin"), cluster("broken", "-1s"))
	})
	t.Run("file, dangling reference", func(t *testing.T) {
		snapshotRestart(t, "file://"+filepath.Join(t.TempDir(), "snapshot.bin"), routes("broken", "nowhere"))
	})
	t.Run("s3, invalid directory", func(t *testing.T) {
		endpoint := os.Getenv("LEANXDS_TEST_S3_ENDPOINT")
		if endpoint == "" {
			t.Skip("needs an S3-compatible server: run `source .ci/s3.sh` first (it sets LEANXDS_TEST_S3_ENDPOINT)")
		}
		bucket := newTestBucket(t, endpoint)
		snapshotRestart(t, "s3://"+bucket+"/leanxds/snapshot.bin?endpoint="+url.QueryEscape(endpoint)+"&region=us-east-1", cluster("broken", "-1s"))
	})
}

// snapshotRestart runs the restart of TestBinarySnapshotRestart, the directory
// of the second run holding broken.yaml with the content broken (rejected at
// start), or nothing when broken is "".
func snapshotRestart(t *testing.T, snapshot string, broken string) {
	leanxdsBinary(t)

	// Process A serves the edge example; no snapshot exists yet.
	a := startServe(t, t.TempDir(), nil, "--config", copyExample(t, "edge"), "--snapshot", snapshot, "--snapshot-interval", "1h")
	assert.NotNil(t, a.logLine("no snapshot to restore; serving from the config source alone"), a.logText())
	ccA := dialInsecure(t, a.xds)
	sotw := conv.ADS(t, ccA, node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	cds := sotw.Request(protocol.TypeCluster).ExpectResponse(conv.Names(edgeNames...)).Version()
	sotw.ACK()
	eds := sotw.Request(protocol.TypeEndpoint, edgeNames...).ExpectResponse(conv.Names(edgeNames...)).Version()
	sotw.ACK()
	delta := conv.DeltaADS(t, ccA, node("envoy-2", "edge"), conv.WithTimeout(10*time.Second))
	r := delta.Subscribe(protocol.TypeCluster, "*").ExpectResponse(conv.Updated(edgeNames...))
	delta.ACK()
	held := make(map[string]string)
	for _, n := range edgeNames {
		held[n] = r.VersionOf(n)
	}

	// SIGTERM: A writes its snapshot once more before it exits 0.
	a.stop(t)
	written := a.logLine("snapshot written")
	require.NotNil(t, written, a.logText())
	assert.Equal(t, 11.0, written["resources"])

	// Process B: the same snapshot, and a directory that is empty, or rejected.
	dirB := t.TempDir()
	if broken != "" {
		writeFile(t, dirB, "broken.yaml", broken)
	}
	b := startServe(t, t.TempDir(), nil, "--config", dirB, "--snapshot", snapshot, "--debounce", "50ms")
	restored := b.logLine("snapshot restored")
	require.NotNil(t, restored, b.logText())
	assert.Equal(t, 11.0, restored["resources"])
	assert.Equal(t, written["revision"], restored["revision"])
	assert.Less(t, b.logIndex("snapshot restored"), b.logIndex("xDS listening"), "restored before the xDS port opens")
	assert.NotNil(t, b.logLine("serving the restored snapshot: the config directory is applied once it is valid and holds resources"), b.logText())
	code, ready := get(t, b.admin, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, ready, "ready: serving the restored snapshot; the config directory is not applied")
	assert.Contains(t, ready, fmt.Sprintf("snapshot restored: 11 resources, revision %v, from %s", written["revision"], strings.Split(snapshot, "?")[0]))
	if broken != "" {
		_, page := get(t, b.admin, "/")
		assert.Contains(t, page, "\n  "+filepath.Join(dirB, "broken.yaml")+":", "the rejection names the file")
	}

	ccB := dialInsecure(t, b.xds)
	// S3, S6: the SotW client reconnects naming the versions it holds: nothing
	// is sent for its wildcard CDS, which is current; its named EDS is answered
	// again, at the version it holds.
	again := conv.ADS(t, ccB, node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	again.Send(&discoveryv3.DiscoveryRequest{Node: node("envoy-1", "edge"), TypeUrl: protocol.TypeCluster, VersionInfo: cds})
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeEndpoint, VersionInfo: eds, ResourceNames: edgeNames})
	again.ExpectResponse(conv.TypeURL(protocol.TypeEndpoint), conv.Names(edgeNames...), conv.Version(eds))
	again.ACK()
	again.ExpectNothing()
	// D3: so is the delta client naming the versions it holds.
	deltaAgain := conv.DeltaADS(t, ccB, node("envoy-2", "edge"), conv.WithTimeout(10*time.Second))
	deltaAgain.InitialVersions(protocol.TypeCluster, held, "*")
	deltaAgain.ExpectNothing()
	// A new client gets the restored resources, at the versions A served.
	fresh := conv.ADS(t, ccB, node("envoy-3", "edge"), conv.WithTimeout(10*time.Second))
	fresh.Request(protocol.TypeCluster).ExpectResponse(conv.Names(edgeNames...), conv.Version(cds))
	fresh.ACK()
	fresh.Request(protocol.TypeEndpoint, edgeNames...).ExpectResponse(conv.Names(edgeNames...), conv.Version(eds))
	fresh.ACK()

	// The directory becomes valid with A's content, in one file renamed in (so
	// that no reload sees half of it): it takes over, deduplicated against the
	// restored content, and nobody is sent anything.
	var all strings.Builder
	for _, f := range []string{"clusters.yaml", "endpoints.yaml", "listeners.yaml", "routes.yaml", "secrets.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "edge", f))
		require.NoError(t, err)
		all.WriteString(asYAMLList(data))
	}
	writeFile(t, dirB, ".all.yaml.tmp", all.String())
	require.NoError(t, os.Rename(filepath.Join(dirB, ".all.yaml.tmp"), filepath.Join(dirB, "all.yaml")))
	if broken != "" {
		require.NoError(t, os.Remove(filepath.Join(dirB, "broken.yaml")))
	}
	eventually(t, "the directory applied", func() bool {
		return metric(t, b.admin, `leanxds_config_last_reload_successful`) == 1
	}, b.logText)
	assert.GreaterOrEqual(t, metric(t, b.admin, `leanxds_config_reloads_total{result="unchanged"}`), 1.0)
	assert.Equal(t, 0.0, metric(t, b.admin, `leanxds_config_reloads_total{result="applied"}`), "the directory changed nothing")
	again.ExpectNothing()
	deltaAgain.ExpectNothing()
	fresh.ExpectNothing()
	_, ready = get(t, b.admin, "/readyz")
	assert.Contains(t, ready, "ready: config loaded; snapshot restored: 11 resources")

	// Nothing changed since the restore: B's shutdown writes nothing.
	b.stop(t)
	assert.Nil(t, b.logLine("snapshot written"), b.logText())
}

// A snapshot that fails its checks is refused and set aside, never deleted: the
// server starts from its config directory alone, says so in its log and
// /readyz, and writes a fresh snapshot in its place; /metrics shows the
// persister's metrics.
func TestBinarySnapshotRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snapshot.bin")
	corrupt := []byte("LXDSSNAP but not much of a snapshot\n")
	require.NoError(t, os.WriteFile(path, corrupt, 0o600))

	// A plain path is a file location too.
	p := startServe(t, t.TempDir(), nil, "--config", copyExample(t, "edge"), "--snapshot", path, "--snapshot-interval", "100ms")
	refused := p.logLine("snapshot refused; serving from the config source alone")
	require.NotNil(t, refused, p.logText())
	assert.Contains(t, refused["err"], "format version check failed")
	aside, _ := refused["set_aside"].(string)
	assert.True(t, strings.HasPrefix(aside, path+".corrupt-"), "set aside as %q", aside)
	kept, err := os.ReadFile(aside)
	require.NoError(t, err, "the refused snapshot is kept")
	assert.Equal(t, corrupt, kept)
	if data, err := os.ReadFile(path); err == nil {
		assert.NotEqual(t, corrupt, data, "%s holds the corrupt snapshot still", path)
	}
	assert.NotNil(t, p.logLine("config loaded"))

	code, ready := get(t, p.admin, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, ready, "ready: config loaded; snapshot refused: file://"+path+": format version check failed")
	assert.Contains(t, ready, "kept as "+aside)

	// The config loaded: the first interval writes a fresh snapshot in its place.
	eventually(t, "a fresh snapshot", func() bool {
		return metric(t, p.admin, "leanxds_snapshot_writes_total") >= 1
	})
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	snap, err := persist.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, 11, snap.Resources)
	assert.Equal(t, float64(len(data)), metric(t, p.admin, "leanxds_snapshot_bytes"))
	assert.Equal(t, float64(snap.Revision), metric(t, p.admin, "leanxds_snapshot_revision"))
	assert.Equal(t, 0.0, metric(t, p.admin, "leanxds_snapshot_write_failures_total"))
	assert.Equal(t, 0.0, metric(t, p.admin, "leanxds_snapshot_conflicts_total"))
	assert.Greater(t, metric(t, p.admin, "leanxds_snapshot_last_success_timestamp_seconds"), 0.0)
	assert.GreaterOrEqual(t, metric(t, p.admin, "leanxds_snapshot_write_duration_seconds_count"), 1.0)

	_, page := get(t, p.admin, "/")
	assert.Contains(t, page, "snapshot  file://"+path+"\n")
	assert.Contains(t, page, "at start: snapshot refused")
	p.stop(t)
}

// A snapshot that fails its checks does not stop a server whose directory is
// invalid when the file backend kept a previous snapshot that passes them: the
// newest such is served, the log names the file and why the newer one was
// refused, /readyz says where the config came from, and the restored content
// is put back in place for the next start.
func TestBinarySnapshotFallsBackToPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snapshot.bin")
	st := store.New()
	_, err := source.NewDir(copyExample(t, "edge"), st, source.DirOptions{Debounce: -1}).Load(context.Background())
	require.NoError(t, err)
	previous, _ := persist.Encode(st.View(), persist.Meta{Writer: "an earlier run", Revision: 7})
	require.NoError(t, os.WriteFile(path+".1", previous, 0o600))
	require.NoError(t, os.WriteFile(path, []byte("LXDSSNAP but not much of a snapshot\n"), 0o600))
	broken := t.TempDir()
	writeFile(t, broken, "broken.yaml", cluster("broken", "-1s"))

	p := startServe(t, t.TempDir(), nil, "--config", broken, "--snapshot", path, "--snapshot-interval", "1h")
	line := p.logLine("snapshot refused; restored the newest previous snapshot that passes its checks")
	require.NotNil(t, line, p.logText())
	assert.Equal(t, "file://"+path+".1", line["from"])
	refused, _ := line["refused"].([]any)
	require.Len(t, refused, 1, p.logText())
	assert.Contains(t, refused[0], "file://"+path+": format version check failed")
	restored := p.logLine("snapshot restored")
	require.NotNil(t, restored, p.logText())
	assert.Equal(t, "file://"+path+".1", restored["from"])
	assert.Equal(t, 11.0, restored["resources"])
	_, ready := get(t, p.admin, "/readyz")
	assert.Contains(t, ready, "ready: serving the restored snapshot")
	assert.Contains(t, ready, "snapshot restored: 11 resources, revision 7, from file://"+path+".1")

	c := conv.ADS(t, dialInsecure(t, p.xds), node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	c.Request(protocol.TypeCluster).ExpectResponse(conv.Names(edgeNames...))

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	snap, err := persist.Decode(data)
	require.NoError(t, err, "the restored snapshot is back in place")
	assert.Equal(t, 11, snap.Resources)
	p.stop(t)
}

// An S3 endpoint that accepts connections and never answers delays the start
// by LEANXDS_RESTORE_TIMEOUT (--restore-timeout) at most: a valid directory is
// then served and the log says that the restore timed out; an invalid one is
// fatal, with a message that says the snapshot was not restored and why.
func TestBinaryRestoreTimeout(t *testing.T) {
	leanxdsBinary(t)
	snapshot := "s3://bucket/leanxds/snapshot.bin?region=us-east-1&endpoint=" + url.QueryEscape("http://"+hangingEndpoint(t))
	env := []string{"LEANXDS_RESTORE_TIMEOUT=1s", "AWS_ACCESS_KEY_ID=leanxds-test", "AWS_SECRET_ACCESS_KEY=leanxds-test-secret",
		"AWS_EC2_METADATA_DISABLED=true"}

	t.Run("valid directory", func(t *testing.T) {
		// startServe gives the process 30 s to listen.
		p := startServe(t, t.TempDir(), env, "--config", copyExample(t, "edge"), "--snapshot", snapshot)
		timedOut := p.logLine("snapshot restore timed out; serving from the config source alone")
		require.NotNil(t, timedOut, p.logText())
		assert.Equal(t, "1s", timedOut["timeout"])
		assert.Less(t, p.logIndex("snapshot restore timed out; serving from the config source alone"), p.logIndex("xDS listening"))
		assert.NotNil(t, p.logLine("config loaded"), p.logText())
		_, ready := get(t, p.admin, "/readyz")
		assert.Contains(t, ready, "ready: config loaded; snapshot not restored: restore timed out after 1s: reading snapshot s3://bucket/leanxds/snapshot.bin")
		c := conv.ADS(t, dialInsecure(t, p.xds), node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
		c.Request(protocol.TypeCluster).ExpectResponse(conv.Names(edgeNames...))
		// No stop: the last snapshot at shutdown would wait for the endpoint too.
	})

	t.Run("invalid directory", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "broken.yaml", cluster("broken", "-1s"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, leanxdsBinary(t), "serve", "--config", dir, "--snapshot", snapshot,
			"--listen", "127.0.0.1:0", "--admin", "", "--log-level", "error")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, ctx.Err(), "serve still running after 30 s:\n%s", out)
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%s", out)
		assert.Equal(t, 1, exit.ExitCode(), "%s", out)
		assert.Contains(t, string(out), "leanxds: nothing to serve: config "+dir+" is invalid")
		assert.Contains(t, string(out), "and no snapshot was restored: restore timed out after 1s: reading snapshot s3://bucket/leanxds/snapshot.bin")
	})
}

// hangingEndpoint returns the address of a listener on 127.0.0.1 that accepts
// connections and never answers.
func hangingEndpoint(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// asYAMLList returns a resource file as items of a YAML list, without its
// comments: a file of one resource becomes one item.
func asYAMLList(data []byte) string {
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 0 && !strings.HasPrefix(lines[0], "- ") {
		for i := range lines {
			if i == 0 {
				lines[i] = "- " + lines[i]
			} else {
				lines[i] = "  " + lines[i]
			}
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// newTestBucket creates a bucket on the S3-compatible server of .ci/s3.sh with
// the credentials it exports (the binary, inheriting them, reaches it as it
// would a user's bucket), and removes it after the test.
func newTestBucket(t *testing.T, endpoint string) string {
	t.Helper()
	name := fmt.Sprintf("leanxds-e2e-%d-%04x", time.Now().UnixNano(), rand.N(1<<16))
	b, err := persist.Open(context.Background(), "s3://"+name+"/probe?endpoint="+url.QueryEscape(endpoint)+"&region=us-east-1", persist.BackendOptions{})
	require.NoError(t, err)
	client := b.(*persist.S3).Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name})
	require.NoError(t, err, "creating bucket %s on %s (is `source .ci/s3.sh` still running?)", name, endpoint)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &name}); err == nil {
			for _, o := range list.Contents {
				_, _ = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &name, Key: o.Key})
			}
		}
		_, _ = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &name})
	})
	return name
}
