module github.com/leanxds/leanxds/bench/peer

go 1.26.0

require (
	github.com/envoyproxy/go-control-plane v0.14.0
	github.com/envoyproxy/go-control-plane/envoy v1.40.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	cel.dev/expr v0.25.3 // indirect
	github.com/cncf/xds/go v0.0.0-20260202195803-dba9d589def2 // indirect
	github.com/envoyproxy/go-control-plane/ratelimit v0.1.0 // indirect
	github.com/envoyproxy/protoc-gen-validate v1.3.3 // indirect
	github.com/planetscale/vtprotobuf v0.6.1-0.20240319094008-0393e58bdf10 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)

// The workload, its changes and the control API are bench/'s own (module
// github.com/leanxds/leanxds/bench), shared with the other benchmarked servers
// (the dependency goes this way only); they build on leanxds's packages.
require (
	github.com/leanxds/leanxds v0.0.0 // indirect
	github.com/leanxds/leanxds/bench v0.0.0
)

replace (
	github.com/leanxds/leanxds => ../..
	github.com/leanxds/leanxds/bench => ..
)
