// Package etcdtest gives tests the three-member etcd cluster that .ci/etcd.sh
// starts on 127.0.0.1: a client, a key prefix of their own, and the members to
// stop and start. A test skips, naming the command, when the cluster is not
// there (LEANXDS_TEST_ETCD_ENDPOINTS unset).
//
// Tests of several packages share the cluster, and go test runs packages in
// parallel: a test that stops members takes the cluster for itself (Disrupt),
// and every other test holds it shared (Client does), through a file lock, so
// that no test sees a member stopped by another.
package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Environment variables exported by .ci/etcd.sh.
const (
	EnvEndpoints = "LEANXDS_TEST_ETCD_ENDPOINTS"
	EnvMembers   = "LEANXDS_TEST_ETCD_MEMBERS"
)

// Endpoints returns the cluster's endpoints, skipping t if there is none.
func Endpoints(t testing.TB) []string {
	t.Helper()
	eps := os.Getenv(EnvEndpoints)
	if eps == "" {
		t.Skip("no etcd cluster: start etcd with: source .ci/etcd.sh")
	}
	return strings.Split(eps, ",")
}

// Client returns a client of the cluster, closed when t ends, holding the
// cluster shared until then (see Disrupt). It skips t if there is no cluster.
func Client(t testing.TB) *clientv3.Client {
	t.Helper()
	eps := Endpoints(t)
	lock(t, false)
	return newClient(t, eps)
}

func newClient(t testing.TB, eps []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Prefix returns a key prefix of t's own, "/test/<name>/<random>", without a
// trailing slash; its keys are deleted when t ends.
func Prefix(t testing.TB, cli *clientv3.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "/test/" + strings.ReplaceAll(t.Name(), "/", "_") + "/" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = cli.Delete(ctx, p+"/", clientv3.WithPrefix())
	})
	return p
}

// Members controls the cluster's members through the control endpoint of
// .ci/etcd.sh.
type Members struct {
	t    testing.TB
	base string
}

// Disrupt takes the cluster for t alone (other tests using it wait) and
// returns its members, to stop and start; every member is started again when
// t ends. It skips t if the cluster or its control endpoint is not there.
func Disrupt(t testing.TB) (*clientv3.Client, *Members) {
	t.Helper()
	eps := Endpoints(t)
	base := os.Getenv(EnvMembers)
	if base == "" {
		t.Skip("no control of the etcd members: start etcd with: source .ci/etcd.sh")
	}
	lock(t, true)
	m := &Members{t: t, base: strings.TrimRight(base, "/")}
	t.Cleanup(func() { m.post("/start") })
	return newClient(t, eps), m
}

// Stop kills member i (0, 1, 2) with SIGKILL.
func (m *Members) Stop(i int) { m.t.Helper(); m.post(fmt.Sprintf("/stop?member=%d", i)) }

// Start starts member i again; it returns once its port accepts connections.
func (m *Members) Start(i int) { m.t.Helper(); m.post(fmt.Sprintf("/start?member=%d", i)) }

// StopAll kills every member.
func (m *Members) StopAll() { m.t.Helper(); m.post("/stop") }

// StartAll starts every stopped member; it returns once all are healthy.
func (m *Members) StartAll() { m.t.Helper(); m.post("/start") }

func (m *Members) post(path string) {
	m.t.Helper()
	c := &http.Client{Timeout: 90 * time.Second}
	resp, err := c.Post(m.base+path, "text/plain", nil)
	if err != nil {
		m.t.Fatalf("etcd members: POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		m.t.Fatalf("etcd members: POST %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
}

// lockPath is the file the tests of every package lock to share the cluster.
func lockPath() string { return filepath.Join(os.TempDir(), "leanxds-etcd-tests.lock") }
