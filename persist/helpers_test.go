package persist_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// quiet is a logger for tests that would otherwise log every write.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sample is a configuration of two scopes and most types, LEDS included: 18
// resources, as a config source that always has the full picture commits them.
func sample(variant string) []store.Change {
	return append([]store.Change{store.ReplaceScope("edge"), store.ReplaceScope("mesh")}, sampleSets(variant)...)
}

// sampleSets is sample without its ReplaceScope changes.
func sampleSets(variant string) []store.Change {
	lb := xdstest.Endpoints("x", "10.9.9.9:80").Endpoints[0].LbEndpoints[0]
	var changes []store.Change
	for _, scope := range []string{"edge", "mesh"} {
		changes = append(changes,
			store.Set(scope, xdstest.Secret("tls")),
			store.Set(scope, xdstest.Cluster("web", xdstest.WithUpstreamTLS("tls"))),
			store.Set(scope, xdstest.Cluster("api")),
			store.Set(scope, xdstest.Endpoints("web", "10.0.0.1:80", "10.0.0.2:80")),
			store.Set(scope, xdstest.Endpoints("api", "10.0.1.1:8080")),
			store.SetNamed(scope, "leds/web/0", lb),
			store.Set(scope, xdstest.Listener("http", 8080, "routes")),
			store.Set(scope, xdstest.SimpleRoute("routes", "web", "api")),
			store.Set(scope, xdstest.Runtime("rt", map[string]any{"variant": variant})),
		)
	}
	return changes
}

// workload is a Workload's resources as one commit into scope.
func workload(w xdstest.Workload, scope string) []store.Change {
	changes := []store.Change{store.ReplaceScope(scope)}
	for _, ms := range w.Resources() {
		for _, m := range ms {
			changes = append(changes, store.Set(scope, m))
		}
	}
	return changes
}

func commit(t testing.TB, st *store.Store, changes ...store.Change) store.Result {
	t.Helper()
	res, err := st.Commit(changes...)
	require.NoError(t, err)
	return res
}

func storeWith(t testing.TB, changes ...store.Change) *store.Store {
	t.Helper()
	st := store.New()
	commit(t, st, changes...)
	return st
}

// requireSameContent fails unless a and b hold the same scopes, types, names,
// bytes and content versions.
func requireSameContent(t testing.TB, a, b store.View) {
	t.Helper()
	require.Equal(t, a.Scopes(), b.Scopes())
	n := 0
	for _, scope := range a.Scopes() {
		for _, ti := range protocol.Types() {
			ta, tb := a.Table(scope, ti.URL), b.Table(scope, ti.URL)
			require.Equal(t, ta.Len(), tb.Len(), "%s %s", scope, ti.Short)
			for _, e := range ta.Sorted() {
				got := tb.Get(e.Name)
				require.NotNil(t, got, "%s %s %q missing", scope, ti.Short, e.Name)
				require.Equal(t, e.Version, got.Version, "%s %s %q: version", scope, ti.Short, e.Name)
				require.True(t, bytes.Equal(e.Body, got.Body), "%s %s %q: body", scope, ti.Short, e.Name)
				n++
			}
		}
	}
	require.Positive(t, n, "compared nothing")
}

func openFile(t testing.TB, path string) persist.Backend {
	t.Helper()
	b, err := persist.Open(context.Background(), path, persist.BackendOptions{})
	require.NoError(t, err)
	return b
}

func tempSnapshot(t testing.TB) string {
	return filepath.Join(t.TempDir(), "snapshot.bin")
}

// reseal rewrites a valid snapshot after mutate changed its content section
// (the history and attachments after it are kept as they are),
// recomputing the checksum over the whole, and the content digest in the header
// too when fixDigest is set. It makes snapshots that pass the early checks and
// fail (or pass) the later ones.
func reseal(t testing.TB, data []byte, fixDigest bool, mutate func(content []byte) []byte) []byte {
	t.Helper()
	const prefix = 8 + 4 + 8
	bodyLen := binary.BigEndian.Uint64(data[12:prefix])
	body := data[prefix : prefix+int(bodyLen)]
	num, typ, n := protowire.ConsumeTag(body)
	require.Equal(t, protowire.Number(1), num)
	require.Equal(t, protowire.BytesType, typ)
	hdr, m := protowire.ConsumeBytes(body[n:])
	require.Positive(t, m)
	hdr = bytes.Clone(hdr)
	// The content section is the scope messages (field 2) after the header;
	// the history and attachments follow it.
	rest := body[n+m:]
	end := 0
	for end < len(rest) {
		num, _, k := protowire.ConsumeTag(rest[end:])
		if k < 0 || num != 2 {
			break
		}
		l := protowire.ConsumeFieldValue(num, protowire.BytesType, rest[end+k:])
		require.Positive(t, l)
		end += k + l
	}
	extras := bytes.Clone(rest[end:])
	content := mutate(bytes.Clone(rest[:end]))
	if fixDigest {
		old := sha256.Sum256(rest[:end])
		sum := sha256.Sum256(content)
		i := bytes.Index(hdr, old[:])
		require.GreaterOrEqual(t, i, 0, "content digest not found in the header")
		copy(hdr[i:], sum[:])
	}
	newBody := protowire.AppendTag(nil, 1, protowire.BytesType)
	newBody = protowire.AppendBytes(newBody, hdr)
	newBody = append(newBody, content...)
	newBody = append(newBody, extras...)
	out := append([]byte(nil), data[:12]...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(newBody)))
	out = append(out, newBody...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// memObject is an in-memory snapshot location with S3's conditional-write
// semantics; each of its clients (memBackend) remembers the ETag it last saw.
type memObject struct {
	mu    sync.Mutex
	data  []byte
	etag  int // 0: no object
	aside map[string][]byte
	// down makes every call fail, as an unreachable store does.
	down bool
	// writes counts successful writes.
	writes int
}

// memBackend is one client of a memObject: a Backend.
type memBackend struct {
	obj  *memObject
	seen int // the ETag last read or written; 0: none seen
}

func newMemObject() *memObject { return &memObject{aside: map[string][]byte{}} }

func (o *memObject) client() *memBackend { return &memBackend{obj: o} }

func (o *memObject) setDown(down bool) {
	o.mu.Lock()
	o.down = down
	o.mu.Unlock()
}

func (o *memObject) content() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.data
}

func (o *memObject) writeCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writes
}

var errDown = io.ErrUnexpectedEOF

func (b *memBackend) Read(ctx context.Context) ([]byte, error) {
	b.obj.mu.Lock()
	defer b.obj.mu.Unlock()
	if b.obj.down {
		return nil, errDown
	}
	b.seen = b.obj.etag
	if b.obj.etag == 0 {
		return nil, persist.ErrNotFound
	}
	return bytes.Clone(b.obj.data), nil // the caller's, as Backend.Read promises
}

func (b *memBackend) Write(ctx context.Context, data []byte) error {
	b.obj.mu.Lock()
	defer b.obj.mu.Unlock()
	if b.obj.down {
		return errDown
	}
	if b.obj.etag != b.seen {
		return persist.ErrConflict
	}
	b.obj.data = bytes.Clone(data)
	b.obj.etag++
	b.obj.writes++
	b.seen = b.obj.etag
	return nil
}

func (b *memBackend) SetAside(ctx context.Context, suffix string) (string, error) {
	b.obj.mu.Lock()
	defer b.obj.mu.Unlock()
	if b.obj.down {
		return "", errDown
	}
	b.obj.aside[suffix] = b.obj.data
	return "mem." + suffix, nil
}

func (b *memBackend) String() string { return "mem://snapshot" }

// eventually polls cond every few milliseconds for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logLine returns the first JSON log line of logs whose message is msg, or nil.
func logLine(t testing.TB, logs *bytes.Buffer, msg string) map[string]any {
	t.Helper()
	for _, l := range bytes.Split(logs.Bytes(), []byte("\n")) {
		var line map[string]any
		if json.Unmarshal(l, &line) == nil && line["msg"] == msg {
			return line
		}
	}
	return nil
}
