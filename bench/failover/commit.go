package failover

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/bench/workload"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// CommitConfig is one measurement of commit-to-every-client latency.
type CommitConfig struct {
	Clients, DeltaEvery, Rounds int
	Workload                    xdstest.Workload
	// Etcd and Prefix: where the etcd source reads (the prefix is written).
	Etcd   *clientv3.Client
	Prefix string
	// Dir is an empty directory for the directory source.
	Dir string
	Log io.Writer
}

// CommitResult is the time from the start of a write (a put in etcd, a file
// rewritten in the directory) to the last client receiving the changed
// endpoints, per round.
type CommitResult struct {
	Etcd, Dir []time.Duration
}

// jsonOf is a resource as a config file or an etcd value holds it.
func jsonOf(m proto.Message) ([]byte, error) {
	a, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(a)
}

func nameOf(m proto.Message) string {
	if c, ok := m.(*endpointv3.ClusterLoadAssignment); ok {
		return c.GetClusterName()
	}
	return m.(interface{ GetName() string }).GetName()
}

// CommitLatency serves the workload from etcd and from a directory, each
// to cfg.Clients clients, and changes one cluster's endpoints cfg.Rounds
// times in each.
func CommitLatency(ctx context.Context, cfg CommitConfig) (*CommitResult, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	res := cfg.Workload.Resources()
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := cfg.Etcd.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	var cla *endpointv3.ClusterLoadAssignment
	for _, t := range workload.Types {
		for _, m := range res[t] {
			b, err := jsonOf(m)
			if err != nil {
				return nil, err
			}
			if cla == nil {
				cla, _ = m.(*endpointv3.ClusterLoadAssignment)
			}
			if err := os.WriteFile(filepath.Join(cfg.Dir, fileOf(t, nameOf(m))), b, 0o644); err != nil {
				return nil, err
			}
			ops = append(ops, clientv3.OpPut(source.EtcdResourceKey(cfg.Prefix, "1", source.DefaultScope, t, nameOf(m)), string(b)))
			if len(ops) == 128 {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	ops = append(ops, clientv3.OpPut(source.EtcdCurrentKey(cfg.Prefix), "1"))
	if err := flush(); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	stEtcd, stDir := store.New(), store.New()
	e := source.NewEtcd(cfg.Etcd, cfg.Prefix, stEtcd, source.EtcdOptions{Logger: quiet})
	d := source.NewDir(cfg.Dir, stDir, source.DirOptions{Logger: quiet})
	for _, s := range []source.Source{e, d} {
		if _, err := s.Load(ctx); err != nil {
			return nil, err
		}
		wg.Go(func() { _ = s.Run(ctx) })
	}

	out := &CommitResult{}
	for _, side := range []struct {
		st    *store.Store
		write func(seq int) error
		into  *[]time.Duration
	}{
		{stEtcd, func(seq int) error {
			b, err := jsonOf(workload.Endpoint(cla, seq))
			if err != nil {
				return err
			}
			_, err = cfg.Etcd.Put(ctx, source.EtcdResourceKey(cfg.Prefix, "1", source.DefaultScope, protocol.TypeEndpoint, cla.GetClusterName()), string(b))
			return err
		}, &out.Etcd},
		{stDir, func(seq int) error {
			b, err := jsonOf(workload.Endpoint(cla, seq))
			if err != nil {
				return err
			}
			path := filepath.Join(cfg.Dir, fileOf(protocol.TypeEndpoint, cla.GetClusterName()))
			if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
				return err
			}
			return os.Rename(path+".tmp", path) // as an editor or a deploy tool does
		}, &out.Dir},
	} {
		ds, err := fanout(ctx, cfg, side.st, cla.GetClusterName(), side.write)
		if err != nil {
			return nil, err
		}
		*side.into = ds
	}
	fmt.Fprintf(cfg.Log, "commit to every one of %d clients: etcd %v, directory %v\n", cfg.Clients, out.Etcd, out.Dir)
	return out, nil
}

func fileOf(typeURL, name string) string {
	return protocol.Short(typeURL) + "-" + name + ".json"
}

// fanout serves st to cfg.Clients clients, then times each round's write to
// the last client receiving the changed endpoints.
func fanout(ctx context.Context, cfg CommitConfig, st *store.Store, changed string, write func(seq int) error) ([]time.Duration, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := grpc.NewServer(stream.ServerOption())
	stream.New(st, stream.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()

	var (
		mu    sync.Mutex
		round int
		hits  int
		last  time.Time
		done  = make(chan struct{}, 1)
	)
	clients := make([]*Client, cfg.Clients)
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i := range clients {
		clients[i] = &Client{ID: fmt.Sprintf("envoy-%05d", i), Delta: cfg.DeltaEvery > 0 && i%cfg.DeltaEvery == cfg.DeltaEvery-1}
		wg.Go(func() { _, errs[i] = clients[i].Connect(ctx, lis.Addr().String(), false) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", clients[i].ID, err)
		}
	}
	for _, c := range clients {
		go func() {
			_ = c.Follow(func(t string, names []string) {
				if t != protocol.TypeEndpoint || !slices.Contains(names, changed) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				hits++
				if hits == round*len(clients) {
					last = time.Now()
					done <- struct{}{}
				}
			})
		}()
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	var out []time.Duration
	for r := 1; r <= max(1, cfg.Rounds); r++ {
		mu.Lock()
		round = r
		mu.Unlock()
		start := time.Now()
		if err := write(r); err != nil {
			return nil, err
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			return nil, fmt.Errorf("round %d: %d of %d clients got the change", r, hits-(r-1)*len(clients), len(clients))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		mu.Lock()
		out = append(out, last.Sub(start))
		mu.Unlock()
	}
	return out, nil
}
