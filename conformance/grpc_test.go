package conformance_test

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
)

// grpcDriver is grpc-go's own xDS client (google.golang.org/grpc/xds): a channel
// to xds:///svc whose bootstrap points at the leanxds server, making real RPCs to
// gRPC backends on 127.0.0.1.
//
// grpc-go reads its bootstrap from GRPC_XDS_BOOTSTRAP(_CONFIG) once per process
// (P4); xds.NewXDSResolverWithConfigForTesting takes it as an argument instead
// and gives each channel an xDS client of its own, so every test of this package
// runs its clients in process, each with its own node.
type grpcDriver struct {
	srv *xdsServer
	// bootstrap is the client's xDS bootstrap configuration.
	bootstrap []byte
	cc        *grpc.ClientConn
	// races counts RPCs made again after grpc-go's switch race (P6).
	races atomic.Int64
}

// grpcBootstrap is the subset of grpc-go's bootstrap file these tests write.
type grpcBootstrap struct {
	XDSServers []grpcXDSServer `json:"xds_servers"`
	Node       struct {
		ID      string `json:"id"`
		Cluster string `json:"cluster"`
	} `json:"node"`
	// ListenerTemplate and Authorities turn on xdstp names.
	ListenerTemplate string                    `json:"client_default_listener_resource_name_template,omitempty"`
	Authorities      map[string]map[string]any `json:"authorities,omitempty"`
}

type grpcXDSServer struct {
	ServerURI    string              `json:"server_uri"`
	ChannelCreds []map[string]string `json:"channel_creds"`
}

func newGRPCBootstrap(srv *xdsServer, nodeID, scope string) grpcBootstrap {
	b := grpcBootstrap{XDSServers: []grpcXDSServer{{ServerURI: srv.addr, ChannelCreds: []map[string]string{{"type": "insecure"}}}}}
	b.Node.ID, b.Node.Cluster = nodeID, scope
	return b
}

func newGRPCDriver(t *testing.T, srv *xdsServer, nodeID, scope string) *grpcDriver {
	return newGRPCDriverWith(t, srv, newGRPCBootstrap(srv, nodeID, scope))
}

func newGRPCDriverWith(t *testing.T, srv *xdsServer, b grpcBootstrap) *grpcDriver {
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return &grpcDriver{srv: srv, bootstrap: raw}
}

func (d *grpcDriver) listener(cfg config) *listenerv3.Listener {
	return cfg.shapeListener(xdstest.APIListener(svcListener, svcRoute))
}

// start dials xds:///svc. The channel's xDS client connects to leanxds at once.
func (d *grpcDriver) start(t *testing.T) {
	resolver, err := xds.NewXDSResolverWithConfigForTesting(d.bootstrap)
	if err != nil {
		t.Fatalf("grpc-go refuses the bootstrap %s: %v", d.bootstrap, err)
	}
	cc, err := grpc.NewClient("xds:///"+svcListener, grpc.WithResolvers(resolver),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial xds:///%s: %v", svcListener, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cc.Connect()
	d.cc = cc
}

// send makes n RPCs, one after the other, each bounded by two seconds.
//
// An RPC that fails because grpc-go picked a cluster its balancer does not know
// yet is made again, every 10ms for at most 200ms, as an application retrying
// UNAVAILABLE would: grpc-go installs a new route before its balancer has the
// clusters the route adds, so the first RPCs after a switch to a new cluster may
// fail so, whatever the server's order (P6). Such retries are counted, and
// reported by check.
func (d *grpcDriver) send(ctx context.Context, n int) []reply {
	out := make([]reply, 0, n)
	for range n {
		backend, err := d.call(ctx)
		for retry := 0; retry < 20 && isSwitchRace(err); retry++ {
			d.races.Add(1)
			time.Sleep(10 * time.Millisecond)
			backend, err = d.call(ctx)
		}
		out = append(out, reply{backend: backend, err: err})
	}
	return out
}

// isSwitchRace recognises the failure of P6.
func isSwitchRace(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unknown cluster selected for RPC")
}

func (d *grpcDriver) call(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp := new(wrapperspb.StringValue)
	err := d.cc.Invoke(ctx, backendMethod, wrapperspb.String("who"), resp)
	return resp.GetValue(), err
}

// check reports the RPCs made again after grpc-go's own race (P6); what the
// server records is checked by the steps, and the RPCs tell the rest.
func (d *grpcDriver) check(t *testing.T) {
	if n := d.races.Swap(0); n > 0 {
		t.Logf("P6: %d times an RPC failed with \"unknown cluster selected for RPC\" as grpc-go switched clusters, and was made again", n)
	}
}

// The backends' service: one method answering the backend's id. It is registered
// by hand, with a message from the protobuf well-known types, so the suite needs
// no generated code.
const backendMethod = "/leanxds.conformance.Backend/Name"

var backendService = grpc.ServiceDesc{
	ServiceName: "leanxds.conformance.Backend",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Name",
		Handler: func(srv any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(new(wrapperspb.StringValue)); err != nil {
				return nil, err
			}
			return wrapperspb.String(srv.(backendID).id), nil
		},
	}},
}

type backendID struct{ id string }

// startGRPCBackends starts a gRPC server on 127.0.0.1 for each backend id.
func startGRPCBackends(t *testing.T) backends {
	b := backends{}
	for _, id := range backendIDs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer()
		g.RegisterService(&backendService, backendID{id})
		go func() { _ = g.Serve(lis) }()
		t.Cleanup(g.Stop)
		b[id] = lis.Addr().String()
	}
	return b
}

// grpcScenarios are run by grpc-go alone.
var grpcScenarios = []scenario{
	{id: "grpc-xdstp", title: "grpc-go with xdstp names: its canonical names find resources committed with their parameters in another order",
		rules: []string{"X1", "X3"},
		run:   map[client]func(*testing.T){grpcGo: grpcXdstp}},
}

// X1, X3: grpc-go names its listener from an xdstp template, and follows the
// xdstp names of the route, cluster and endpoints the resources reference. Those
// are committed with their context parameters out of order; grpc-go subscribes to
// the canonical (sorted) form, over SotW.
func grpcXdstp(t *testing.T) {
	const (
		listenerName = "xdstp://auth/envoy.config.listener.v3.Listener/svc"
		routeName    = "xdstp://auth/envoy.config.route.v3.RouteConfiguration/svc-route?zone=z1&env=prod"
		clusterName  = "xdstp://auth/envoy.config.cluster.v3.Cluster/c1?zone=z1&env=prod"
		serviceName  = "xdstp://auth/envoy.config.endpoint.v3.ClusterLoadAssignment/c1?zone=z1&env=prod"
	)
	srv := startServer(t)
	b := startGRPCBackends(t)
	commit := func(backend string) {
		srv.commit(t,
			store.Set(scope, xdstest.APIListener(listenerName, routeName)),
			store.Set(scope, xdstest.Route(routeName, xdstest.VirtualHost("svc", []string{"*"}, xdstest.RouteTo("/", clusterName)))),
			store.Set(scope, xdstest.Cluster(clusterName, xdstest.WithServiceName(serviceName))), // gRPC wants a service name with xdstp
			store.Set(scope, xdstest.Endpoints(serviceName, b[backend])),
		)
	}
	commit("b1")
	boot := newGRPCBootstrap(srv, "grpc-xdstp", scope)
	boot.ListenerTemplate = "xdstp://auth/envoy.config.listener.v3.Listener/%s"
	boot.Authorities = map[string]map[string]any{"auth": {}} // served by the top-level xds_servers
	d := newGRPCDriverWith(t, srv, boot)
	d.start(t)
	j := &journeyRun{t: t, drivers: map[string]driver{"a": d}}
	j.waitServed("a", []string{"b1"})
	commit("b2")
	j.waitServed("a", []string{"b2"})

	var asked []string
	for _, r := range srv.log.requestsOf("grpc-xdstp") {
		if r.sotw == nil {
			t.Fatalf("grpc-go sent a delta request; it speaks SotW")
		}
		asked = appendUnique(asked, r.sotw.GetResourceNames()...)
	}
	for _, name := range []string{listenerName, routeName, clusterName, serviceName} {
		if !slices.Contains(asked, normalizeName(name)) {
			t.Errorf("grpc-go never asked for %s in its canonical form; it asked for %v", name, asked)
		}
	}
	if !slices.ContainsFunc(asked, func(n string) bool { return strings.Contains(n, "env=prod&zone=z1") }) {
		t.Errorf("grpc-go asked for %v: want canonical xdstp names", asked)
	}
}
