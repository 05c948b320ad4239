package bench_test

import (
	"context"
	"flag"
	"testing"

	"github.com/leanxds/leanxds/bench/failover"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/internal/xdstest"
)

var (
	failoverClients = flag.Int("failover.clients", 100, "clients of the failover benchmark (10000 for the RESULTS.md row: -failover.clients=10000 -timeout 0)")
	failoverFull    = flag.Bool("failover.full", false, "the benchmarks' default workload (1,000 clusters, 365 KB a client) instead of a tenth of it")
)

// TestFailover runs the failover benchmark (bench/failover): clients on
// replica A, A killed, every client resumed on B. Resumed clients are sent
// only the endpoints and routes they name (S6, D9), never clusters nor
// listeners (S3, D3): far fewer bytes than their first connect.
func TestFailover(t *testing.T) {
	w := xdstest.DefaultWorkload()
	if !*failoverFull {
		w.Clusters, w.Listeners, w.Routes = 100, 10, 10
	}
	res, err := failover.Run(context.Background(), failover.Config{Clients: *failoverClients, DeltaEvery: 2, Workload: w, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failover.TotalBytes >= res.First.TotalBytes {
		t.Errorf("the failover sent %d bytes, the first connect %d", res.Failover.TotalBytes, res.First.TotalBytes)
	}
	if res.Failover.ResourcesSotW != w.Clusters+w.Routes || res.Failover.ResDelta != w.Clusters+w.Routes {
		t.Errorf("resumed clients were sent %d (SotW) and %d (delta) resources: want the %d endpoints and %d routes again (S6, D9)",
			res.Failover.ResourcesSotW, res.Failover.ResDelta, w.Clusters, w.Routes)
	}
}

var commitClients = flag.Int("commit.clients", 100, "clients of each side of the commit latency benchmark")

// TestCommitLatencyEtcdVsDir times a change of one cluster's endpoints from
// its write (a put in etcd; a file of the config directory replaced) to the
// last of the clients receiving it, through each source.
func TestCommitLatencyEtcdVsDir(t *testing.T) {
	cli := etcdtest.Client(t)
	w := xdstest.DefaultWorkload()
	if !*failoverFull {
		w.Clusters, w.Listeners, w.Routes = 100, 10, 10
	}
	res, err := failover.CommitLatency(context.Background(), failover.CommitConfig{
		Clients: *commitClients, DeltaEvery: 2, Rounds: 5, Workload: w,
		Etcd: cli, Prefix: etcdtest.Prefix(t, cli), Dir: t.TempDir(), Log: testLog{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Etcd) != 5 || len(res.Dir) != 5 {
		t.Errorf("rounds: etcd %d, directory %d; want 5 each", len(res.Etcd), len(res.Dir))
	}
}
