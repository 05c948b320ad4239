// Package admin is what an operator reads of an xDS server: the admin HTTP
// pages (an index page, Prometheus /metrics, /healthz and /readyz, and the
// /debug/ pages listing every stream and what each node is served), the
// Client Status Discovery Service (CSDS), which reports the same over gRPC,
// and the gRPC health service. An embedder mounts the pages and CSDS in one
// call each:
//
//	m := admin.NewMetrics(st)
//	xds := stream.New(st, stream.Options{Hooks: m.Hooks()})
//	a := admin.New(admin.Options{Store: st, Streams: xds, Metrics: m})
//	xds.Register(g)
//	a.RegisterCSDS(g)                      // on the xDS gRPC server
//	go http.Serve(adminListener, a)        // the admin pages
//
// The gRPC health service, which Kubernetes gRPC probes and grpcurl ask on the
// xDS port, is Health; server reflection, which lets grpcurl list and call
// the services, is grpc-go's:
//
//	h := admin.NewHealth()
//	h.Register(g)
//	reflection.Register(g)                 // google.golang.org/grpc/reflection
//	h.SetServing(true)                     // once the initial config is in the store
//	h.Shutdown()                           // when draining, before g.GracefulStop()
//
// The package reads what it shows through small interfaces, never a server
// of its own: Streams (a *stream.Server: the status each stream publishes,
// read without locking the streams), Source (how the config was last applied:
// a config directory, ...), Reloader (POST /reload), Snapshot (the
// snapshot package persist keeps of the store), Fleet (the status every
// replica of a fleet publishes: package admin/fleet reads it from etcd), and
// Rollouts (a *rollout.Manager). The store is read through views, which take
// no lock.
//
// The parts:
//
//   - admin.go: Options, New, the index page and the health probes.
//   - health.go: the gRPC health service (grpc.health.v1) of the xDS port.
//   - auth.go: who may read what every node is served: the admin token (given
//     or in a file), a verified client certificate, or callers on this host
//     only (and, for CSDS, Options.CSDSVisible); and who may change what is
//     served (POST /reload, /admin/...): the token or a verified client
//     certificate only, and nobody when neither is configured.
//   - debug.go, page.go: /debug/clients and /debug/config, answered a page
//     at a time within a byte budget (Options.MaxBytes, Options.MaxPage).
//   - fleetstatus.go, fleetpage.go: fleet status, the nodes of every replica
//     of a fleet (FleetNode, what a replica publishes of each node; Fleet,
//     where they are read from: package admin/fleet, over etcd), shown on
//     /debug/fleet a page at a time, each node judged current or not against
//     what this replica would send it now (through Rollouts, when it is a
//     RolloutRouter: a rollout's base to a node outside its stage).
//   - csds.go, served.go, nodematch.go: CSDS, within a byte budget
//     (Options.CSDSMaxBytes): what each subscribed resource's status is
//     (ACKED, NACKED, REQUESTED, DOES_NOT_EXIST), from the stream status.
//   - redact.go: secrets' sensitive fields never leave through a page or CSDS.
//   - metrics.go: the Prometheus metrics, fed by stream hooks and read from
//     the store and the streams' limits when scraped.
//   - source.go, snapshot.go: what the page, /readyz and the metrics show of
//     the source and the snapshot.
//   - history.go, rollouts.go: the store's kept revisions (/debug/history),
//     the staged rollouts (/debug/rollouts, through Rollouts: a
//     *rollout.Manager), and what changes them: POST /admin/rollout/promote,
//     /admin/rollout/abort and /admin/rollback. These pages are HTML, or JSON
//     with ?format=json.
//
// Messages to refused or over-budget callers name the flags of leanxds serve
// that set the limit (--admin-token, --admin-max-bytes, --csds-max-bytes), as
// an operator of the binary reads them.
package admin
