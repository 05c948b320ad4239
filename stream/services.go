package stream

import (
	"context"
	"strings"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	extensionservice "github.com/envoyproxy/go-control-plane/envoy/service/extension/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	runtimeservice "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"

	"github.com/leanxds/leanxds/protocol"
)

// services pairs each xDS gRPC service with the type it serves ("" for ADS).
var services = []struct {
	desc    *grpc.ServiceDesc
	typeURL string
}{
	{&discoveryv3.AggregatedDiscoveryService_ServiceDesc, ""},
	{&listenerservice.ListenerDiscoveryService_ServiceDesc, protocol.TypeListener},
	{&routeservice.RouteDiscoveryService_ServiceDesc, protocol.TypeRoute},
	{&routeservice.ScopedRoutesDiscoveryService_ServiceDesc, protocol.TypeScopedRoute},
	{&routeservice.VirtualHostDiscoveryService_ServiceDesc, protocol.TypeVirtualHost},
	{&clusterservice.ClusterDiscoveryService_ServiceDesc, protocol.TypeCluster},
	{&endpointservice.EndpointDiscoveryService_ServiceDesc, protocol.TypeEndpoint},
	{&endpointservice.LocalityEndpointDiscoveryService_ServiceDesc, protocol.TypeLbEndpoint},
	{&secretservice.SecretDiscoveryService_ServiceDesc, protocol.TypeSecret},
	{&runtimeservice.RuntimeDiscoveryService_ServiceDesc, protocol.TypeRuntime},
	{&extensionservice.ExtensionConfigDiscoveryService_ServiceDesc, protocol.TypeExtensionCfg},
}

// serviceDescs builds the service descriptions Register installs: the generated
// ones, with each method routed to this server's SotW, delta or fetch handler by
// its name (Stream*, Delta*, Fetch*).
func (s *Server) serviceDescs() []*grpc.ServiceDesc {
	var out []*grpc.ServiceDesc
	for _, svc := range services {
		typeURL := svc.typeURL
		name := "ads"
		if typeURL != "" {
			name = strings.ToLower(protocol.Short(typeURL))
		}
		d := &grpc.ServiceDesc{
			ServiceName: svc.desc.ServiceName,
			HandlerType: (*any)(nil),
			Metadata:    svc.desc.Metadata,
		}
		for _, sd := range svc.desc.Streams {
			sd := sd
			if strings.HasPrefix(sd.StreamName, "Delta") {
				sd.Handler = func(_ any, ss grpc.ServerStream) error { return serve(s, ss, &deltaVariant, typeURL, name) }
			} else {
				sd.Handler = func(_ any, ss grpc.ServerStream) error { return serve(s, ss, &sotwVariant, typeURL, name) }
			}
			d.Streams = append(d.Streams, sd)
		}
		for _, md := range svc.desc.Methods {
			md := md
			md.Handler = func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
				req := new(discoveryv3.DiscoveryRequest)
				if err := dec(req); err != nil {
					return nil, err
				}
				call := func(ctx context.Context, r any) (any, error) {
					return s.fetch(ctx, r.(*discoveryv3.DiscoveryRequest), typeURL)
				}
				if icpt == nil {
					return call(ctx, req)
				}
				info := &grpc.UnaryServerInfo{Server: s, FullMethod: "/" + svc.desc.ServiceName + "/" + md.MethodName}
				return icpt(ctx, req, info, call)
			}
			d.Methods = append(d.Methods, md)
		}
		out = append(out, d)
	}
	return out
}
