package etcdsource_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/admin/etcdsource"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = "127.0.0.1:40000" // the debug pages are open to this host
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// etcd that does not answer: /readyz, the index page and the metrics say so.
func TestUnreachable(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	st := store.New()
	src := source.NewEtcd(cli, "/leanxds", st, source.EtcdOptions{RequestTimeout: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = src.Load(ctx)
	require.Error(t, err)

	a := admin.New(admin.Options{Store: st, Streams: stream.New(st, stream.Options{}), Source: etcdsource.Of(src)})
	s := etcdsource.Of(src).SourceStatus()
	assert.Equal(t, admin.SourceEtcd, s.Kind)
	assert.Equal(t, "etcd://127.0.0.1:1/leanxds", s.Location)
	assert.Contains(t, s.Stale, "etcd unreachable")

	_, body := get(t, a, "/readyz")
	assert.Contains(t, body, "config source stale since")
	assert.Contains(t, body, "etcd unreachable")
	_, body = get(t, a, "/")
	assert.Contains(t, body, "config    etcd://127.0.0.1:1/leanxds")
	assert.Contains(t, body, "changes in etcd are not seen")
	_, body = get(t, a, "/metrics")
	assert.Contains(t, body, "\nleanxds_config_source_stale 1\n")
}

// A refused value is on the index page and in /debug/reload, with its key.
func TestRefusedValues(t *testing.T) {
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t, cli)
	ctx := context.Background()
	_, err := cli.Put(ctx, source.EtcdCurrentKey(p), "1")
	require.NoError(t, err)
	bad := source.EtcdGenPrefix(p, "1") + "edge/envoy.config.cluster.v3.Cluster/bad"
	_, err = cli.Put(ctx, bad, `{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "bad", "connect_timeout": "-1s"}`)
	require.NoError(t, err)
	st := store.New()
	src := source.NewEtcd(cli, p, st, source.EtcdOptions{})
	_, err = src.Load(ctx)
	require.NoError(t, err)

	a := admin.New(admin.Options{Store: st, Streams: stream.New(st, stream.Options{}), Source: etcdsource.Of(src)})
	_, body := get(t, a, "/")
	assert.Contains(t, body, `etcd      generation "1" at etcd revision`)
	assert.Contains(t, body, "REFUSED   1 keys")
	assert.Contains(t, body, bad)
	assert.Contains(t, body, "rejected  1 values since start")
	code, body := get(t, a, "/debug/reload")
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, strings.Contains(body, `"kind": "etcd"`) && strings.Contains(body, `"generation": "1"`), body)
	_, body = get(t, a, "/metrics")
	assert.Contains(t, body, "\nleanxds_config_source_stale 0\n")
}
