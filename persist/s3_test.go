package persist_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// s3Bucket is a fresh bucket on the test S3 server (.ci/s3.sh), reached as a
// user's bucket would be: persist.Open with an s3:// URL and the standard
// credential chain (the AWS_* variables .ci/s3.sh exports).
type s3Bucket struct {
	endpoint string
	name     string
	client   *s3.Client
}

func newS3Bucket(t testing.TB) *s3Bucket {
	t.Helper()
	endpoint := os.Getenv("LEANXDS_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("S3 tests need an S3-compatible server and CI=true: run `source .ci/s3.sh` before the tests")
		}
		t.Skip("S3 tests need an S3-compatible server: run `source .ci/s3.sh` first")
	}
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		t.Fatalf("LEANXDS_TEST_S3_ENDPOINT=%s is not reachable (%v): run `source .ci/s3.sh` first", endpoint, err)
	}
	conn.Close()

	bk := &s3Bucket{endpoint: endpoint, name: fmt.Sprintf("leanxds-test-%d-%04x", time.Now().UnixNano(), rand.N(1<<16))}
	b, err := persist.Open(context.Background(), bk.url("probe"), persist.BackendOptions{})
	require.NoError(t, err)
	bk.client = b.(*persist.S3).Client()
	ctx := context.Background()
	_, err = bk.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bk.name})
	require.NoError(t, err, "creating bucket %s on %s", bk.name, endpoint)
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := bk.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bk.name})
		if err == nil {
			for _, o := range list.Contents {
				_, _ = bk.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bk.name, Key: o.Key})
			}
		}
		_, _ = bk.client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bk.name})
	})
	return bk
}

// url is the snapshot URL of key in the bucket, through endpoint (default: the
// server's own).
func (bk *s3Bucket) url(key string, endpoint ...string) string {
	e := bk.endpoint
	if len(endpoint) > 0 {
		e = endpoint[0]
	}
	return "s3://" + bk.name + "/" + key + "?endpoint=" + url.QueryEscape(e)
}

func (bk *s3Bucket) open(t testing.TB, key string, opts ...func(*s3.Options)) persist.Backend {
	t.Helper()
	b, err := persist.Open(context.Background(), bk.url(key), persist.BackendOptions{S3: opts})
	require.NoError(t, err)
	return b
}

func (bk *s3Bucket) get(t testing.TB, key string) ([]byte, string) {
	t.Helper()
	out, err := bk.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bk.name, Key: &key})
	require.NoError(t, err, "get %s", key)
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	require.NoError(t, err)
	return data, aws.ToString(out.ETag)
}

func (bk *s3Bucket) put(t testing.TB, key string, data []byte) {
	t.Helper()
	_, err := bk.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bk.name, Key: &key, Body: bytes.NewReader(data)})
	require.NoError(t, err)
}

func (bk *s3Bucket) keys(t testing.TB) []string {
	t.Helper()
	list, err := bk.client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bk.name})
	require.NoError(t, err)
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// A large store (2,100 resources of the benchmarks' default workload, and two
// more scopes), round trip through S3.
func TestS3RoundTripLargeStore(t *testing.T) {
	bk := newS3Bucket(t)
	ctx := context.Background()
	w := xdstest.DefaultWorkload()
	a := storeWith(t, append(workload(w, "fleet"), sample("a")...)...)
	n := 2*w.Clusters + w.Listeners + w.Routes + 18
	pa := persist.NewPersister(a, bk.open(t, "leanxds/snapshot.bin"), persist.Options{Logger: quiet})
	wrote, err := pa.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)
	data, _ := bk.get(t, "leanxds/snapshot.bin")
	assert.Equal(t, pa.Stats().LastBytes, len(data))

	b := store.New()
	info, err := persist.Restore(ctx, bk.open(t, "leanxds/snapshot.bin"), b)
	require.NoError(t, err)
	assert.True(t, info.Restored)
	assert.Equal(t, n, info.Header.Resources)
	assert.Zero(t, info.Mismatched)
	requireSameContent(t, a.View(), b.View())
}

// An unchanged store is not written: the object keeps its ETag.
func TestS3UnchangedStoreNotWritten(t *testing.T) {
	bk := newS3Bucket(t)
	ctx := context.Background()
	st := storeWith(t, sample("a")...)
	p := persist.NewPersister(st, bk.open(t, "snap"), persist.Options{Logger: quiet})
	wrote, err := p.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)
	_, etag := bk.get(t, "snap")

	commit(t, st, sample("a")...)
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)
	_, again := bk.get(t, "snap")
	assert.Equal(t, etag, again)

	commit(t, st, sample("b")...)
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	_, changed := bk.get(t, "snap")
	assert.NotEqual(t, etag, changed)
	assert.Equal(t, uint64(2), p.Stats().Writes)
}

// Conditional writes: If-None-Match: * for the first, If-Match with the last
// ETag seen after; the loser of a race gets ErrConflict and writes nothing.
func TestS3ConditionalWrites(t *testing.T) {
	bk := newS3Bucket(t)
	ctx := context.Background()
	one, two := bk.open(t, "snap"), bk.open(t, "snap")
	_, err := one.Read(ctx)
	require.ErrorIs(t, err, persist.ErrNotFound)

	require.NoError(t, one.Write(ctx, []byte("one")))
	err = two.Write(ctx, []byte("two"))
	require.ErrorIs(t, err, persist.ErrConflict, "an object appeared since two last looked")
	data, _ := bk.get(t, "snap")
	assert.Equal(t, "one", string(data))

	got, err := two.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "one", string(got))
	require.NoError(t, two.Write(ctx, []byte("two")))
	err = one.Write(ctx, []byte("one again"))
	require.ErrorIs(t, err, persist.ErrConflict, "one's ETag is stale")
	data, _ = bk.get(t, "snap")
	assert.Equal(t, "two", string(data))
}

// Two persisters, two replicas, one key: neither silently overwrites the other's
// newer snapshot; on a conflict each re-reads and decides by revision.
func TestS3ConflictBetweenPersisters(t *testing.T) {
	bk := newS3Bucket(t)
	ctx := context.Background()

	// Two replicas start and find no snapshot.
	a := store.New()
	pa := persist.NewPersister(a, bk.open(t, "snap"), persist.Options{Logger: quiet, Writer: "replica-a"})
	_, err := pa.Restore(ctx)
	require.NoError(t, err)
	b := store.New()
	pb := persist.NewPersister(b, bk.open(t, "snap"), persist.Options{Logger: quiet, Writer: "replica-b"})
	_, err = pb.Restore(ctx)
	require.NoError(t, err)

	// A writes revision 3 (If-None-Match: *).
	commit(t, a, sample("a")...)
	commit(t, a, store.Set("edge", xdstest.Cluster("a1")))
	commit(t, a, store.Set("edge", xdstest.Cluster("a2")))
	wrote, err := pa.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)

	// B at revision 1 conflicts (If-None-Match: * fails), re-reads, keeps A's.
	commit(t, b, sample("b")...)
	wrote, err = pb.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote, "A's snapshot (revision 3) is newer than B's (1)")
	assert.Equal(t, uint64(1), pb.Stats().Conflicts)
	data, _ := bk.get(t, "snap")
	snap, err := persist.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, "replica-a", snap.Writer)

	// B's config moves on past A's revision: B's snapshot replaces A's.
	for _, name := range []string{"b1", "b2", "b3"} {
		commit(t, b, store.Set("mesh", xdstest.Cluster(name)))
	}
	wrote, err = pb.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	data, _ = bk.get(t, "snap")
	snap, err = persist.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, "replica-b", snap.Writer)
	assert.Equal(t, uint64(4), snap.Revision)

	// A's ETag is stale now; it commits to revision 4 too, later: it wins.
	commit(t, a, store.Set("edge", xdstest.Cluster("a3")))
	wrote, err = pa.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	assert.Equal(t, uint64(1), pa.Stats().Conflicts)
	data, _ = bk.get(t, "snap")
	snap, err = persist.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, "replica-a", snap.Writer)
	assert.Equal(t, persist.ContentDigest(a.View()), snap.ContentDigest)
}

// A snapshot that fails its checks is refused, copied aside, left in place, and
// replaced by the first snapshot of the config source's content.
func TestS3RefusesDamagedSnapshot(t *testing.T) {
	valid, _ := persist.Encode(storeWith(t, sample("a")...).View(), persist.Meta{Writer: "w"})
	corrupt := bytes.Clone(valid)
	corrupt[len(corrupt)/2] ^= 0x01
	cases := []struct {
		name  string
		data  []byte
		check error
	}{
		{"corrupt", corrupt, persist.ErrChecksum},
		{"truncated", valid[:len(valid)-100], persist.ErrLength},
	}
	bk := newS3Bucket(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			key := c.name + "/snapshot.bin"
			bk.put(t, key, c.data)

			st := store.New()
			p := persist.NewPersister(st, bk.open(t, key), persist.Options{Logger: quiet})
			info, err := p.Restore(ctx)
			require.Error(t, err)
			assert.ErrorIs(t, err, persist.ErrRefused)
			assert.ErrorIs(t, err, c.check)
			assert.True(t, info.Refused)
			assert.Zero(t, st.View().Revision())
			require.True(t, strings.HasPrefix(info.SetAside, "s3://"+bk.name+"/"+key+".corrupt-"), info.SetAside)
			asideKey := strings.TrimPrefix(info.SetAside, "s3://"+bk.name+"/")
			kept, _ := bk.get(t, asideKey)
			assert.Equal(t, c.data, kept)
			original, _ := bk.get(t, key)
			assert.Equal(t, c.data, original, "the original is left in place")

			// The server starts from its config source; the first snapshot
			// replaces the refused one (If-Match its ETag), the copy stays.
			commit(t, st, sample("b")...)
			p.ConfigLoaded()
			wrote, err := p.Persist(ctx)
			require.NoError(t, err)
			assert.True(t, wrote)
			now, _ := bk.get(t, key)
			snap, err := persist.Decode(now)
			require.NoError(t, err)
			assert.Equal(t, persist.ContentDigest(st.View()), snap.ContentDigest)
			assert.Contains(t, bk.keys(t), asideKey)
		})
	}
}

// The S3 server goes away and comes back: writes fail and are retried with
// backoff, the xDS server keeps serving (a client gets a change made during the
// outage), and writes resume with the latest content.
func TestS3BackendDownThenBack(t *testing.T) {
	bk := newS3Bucket(t)
	u, err := url.Parse(bk.endpoint)
	require.NoError(t, err)
	proxy := newFlakyProxy(t, u.Host)
	b, err := persist.Open(context.Background(), bk.url("snap", "http://"+proxy.addr()), persist.BackendOptions{
		S3: []func(*s3.Options){func(o *s3.Options) { o.RetryMaxAttempts = 1 }},
	})
	require.NoError(t, err)

	st := storeWith(t, sample("a")...)
	cc, _ := serve(t, st)
	client := conv.ADS(t, cc, envoy("envoy-1"))
	client.Request(protocol.TypeCluster)
	client.ExpectResponse(conv.Names("api", "web"))
	client.ACK()

	p := persist.NewPersister(st, b, persist.Options{
		Logger: quiet, Interval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		WriteTimeout: 5 * time.Second,
	})
	_, err = p.Restore(context.Background())
	require.NoError(t, err)
	proxy.setDown(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "failed writes while S3 is down", func() bool { return p.Stats().Failures >= 3 })

	commit(t, st, store.Set("edge", xdstest.Cluster("during-outage")))
	client.ExpectResponse(conv.Names("api", "during-outage", "web"))
	client.ACK()
	assert.Zero(t, p.Stats().Writes)

	proxy.setDown(false)
	eventually(t, "writes to resume", func() bool { return p.Stats().Writes == 1 })
	cancel()
	require.NoError(t, <-done)
	data, _ := bk.get(t, "snap")
	snap, err := persist.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, persist.ContentDigest(st.View()), snap.ContentDigest)
}

// flakyProxy forwards TCP connections to an address, or, while down, drops
// them: an S3 endpoint that goes away and comes back.
type flakyProxy struct {
	lis    net.Listener
	target string
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &flakyProxy{lis: lis, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		lis.Close()
		p.closeAll()
	})
	return p
}

func (p *flakyProxy) addr() string { return p.lis.Addr().String() }

func (p *flakyProxy) setDown(down bool) {
	p.down.Store(down)
	if down {
		p.closeAll()
	}
}

func (p *flakyProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *flakyProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

func (p *flakyProxy) serve() {
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.track(in, out)
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
	}
}
