package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/admin/dirsource"
	"github.com/leanxds/leanxds/admin/etcdsource"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/rollout/etcdrollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// runServe is `leanxds serve`: it returns when ctx ends (SIGTERM, SIGINT) and the
// server has drained, or on a fatal error.
func runServe(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c, o := serveCommand(stderr)
	c.helpOut = stdout
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageErrorf("serve: unexpected argument %q", c.fs.Arg(0))
	}
	if err := o.check(); err != nil {
		return err
	}
	o.etcdClient.Username, o.etcdClient.Password = source.EtcdCredentialsFromEnv(func(k string) string {
		v, _ := env(k)
		return v
	})
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	s, err := newServer(ctx, o, log)
	if err != nil {
		return err
	}
	return s.run(ctx)
}

// server is a running `leanxds serve`: the store, the config directory feeding
// it, the snapshot keeping it across restarts, the xDS and CSDS services, and
// the admin HTTP server.
type server struct {
	opts *serveOptions
	log  *slog.Logger
	st   *store.Store
	// source is the config directory, src the source served: source or
	// etcd. etcdCli is etcd's client, closed once src stopped.
	source  *source.Dir
	etcd    *source.Etcd
	src     source.Source
	etcdCli *clientv3.Client
	metrics *admin.Metrics
	xds     *stream.Server
	grpc    *grpc.Server
	// admin is the admin HTTP handler and CSDS (package admin); adminAddr is
	// the address its HTTP server listens on, once started.
	admin     *admin.Admin
	adminAddr net.Addr
	// health is the gRPC health service of the xDS port: SERVING from the
	// initial load on, NOT_SERVING while draining.
	health *admin.Health
	// persister keeps the store's snapshot (--snapshot); nil without one.
	persister *persist.Persister
	// snapshot is what the restore at start found and did; nil until then, and
	// without --snapshot.
	snapshot atomic.Pointer[persist.Info]
	// ready is set once a config is in the store (/readyz).
	ready atomic.Bool
	// fleet publishes the fleet status (--source etcd://, --fleet-etcd); nil
	// without it.
	fleet *fleetStatus
	// rollouts stages changes (rollouts.go): the xDS server's Router; plan
	// is --rollout's, nil without it.
	rollouts *rollout.Manager
	plan     *rollout.Plan
	// etcdRollouts serves and decides the rollouts of the etcd source's
	// prefix (leanxds apply --rollout) in the Manager's place: the xDS
	// server's Router and the admin server's rollouts; nil without --source
	// etcd://.
	etcdRollouts *etcdrollout.Replica
}

func newServer(ctx context.Context, o *serveOptions, log *slog.Logger) (*server, error) {
	scopeOf, err := scopeFunc(o.scopeBy)
	if err != nil {
		return nil, err
	}
	if o.adminTokenFile != "" {
		// Read now, so that a missing or empty file fails at start rather
		// than leave the mutating endpoints closed to everyone.
		tok, err := admin.ReadTokenFile(o.adminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
		if tok == "" {
			return nil, fmt.Errorf("--admin-token-file %s holds no token", o.adminTokenFile)
		}
	}
	plan, err := o.rolloutPlan()
	if err != nil {
		return nil, err
	}
	var storeOpts []store.Option
	if o.history > 0 {
		storeOpts = append(storeOpts, store.KeepHistory(o.history))
	}
	s := &server{opts: o, log: log, st: store.New(storeOpts...), plan: plan}
	s.metrics = admin.NewMetrics(s.st)
	if o.snapshot != "" {
		b, err := openSnapshot(ctx, o.snapshot)
		if err != nil {
			return nil, err
		}
		s.persister = persist.NewPersister(s.st, b, persist.Options{Interval: o.snapshotInterval, Logger: log})
		s.metrics.Registry().MustRegister(s.persister)
	}
	dirOpts := o.dir
	dirOpts.Logger, dirOpts.AllowDangling = log, o.allowDangling
	// serve's 0 turns the quiet period and the guard's minimum off; the
	// source's 0 is their default.
	dirOpts.Debounce, dirOpts.DeleteGuardMin = off(o.debounce), off(o.dir.DeleteGuardMin)
	dirOpts.Commit = s.stageReload(ctx)
	dirOpts.OnReload = func(outcome source.Outcome, res store.Result) {
		s.metrics.Reloaded(string(outcome), res.Changed())
		if (outcome == source.Applied || outcome == source.Unchanged) && s.persister != nil {
			// From the first load of the directory on, what the store holds is
			// the config, even empty, and is written as such.
			s.persister.ConfigLoaded()
		}
		if outcome == source.Applied {
			s.saveDirDigest()
		}
	}
	var adminSrc admin.Source
	var reloader admin.Reloader
	if o.etcd != nil {
		cfg, err := source.EtcdConfig(*o.etcd, o.etcdClient)
		if err != nil {
			return nil, err
		}
		if s.etcdCli, err = clientv3.New(cfg); err != nil {
			return nil, fmt.Errorf("etcd: %w", err)
		}
		s.etcdRollouts = etcdrollout.New(etcdrollout.Options{Client: s.etcdCli, Prefix: o.etcd.Prefix, ID: o.fleet.replicaID, Logger: log})
		s.etcd = source.NewEtcd(s.etcdCli, o.etcd.Prefix, s.st, source.EtcdOptions{
			Logger: log, Location: o.etcd.String(), OnReload: dirOpts.OnReload, Rollouts: s.etcdRollouts,
		})
		s.src, adminSrc = s.etcd, etcdsource.Of(s.etcd)
	} else {
		s.source = source.NewDir(o.configDir, s.st, dirOpts)
		s.src, adminSrc, reloader = s.source, dirsource.Of(s.source), dirsource.Of(s.source)
	}

	xopts := stream.Options{
		ScopeOf:             scopeOf,
		NoDefaultScope:      o.noDefaultScope,
		Hooks:               s.metrics.Hooks(),
		Logger:              log,
		MaxConns:            off(o.maxConns),
		MaxStreamsPerConn:   off(o.maxStreamsPerConn),
		FirstRequestTimeout: off(o.firstRequestTimeout),
		SendTimeout:         off(o.sendTimeout),
	}
	xopts.Limits, xopts.FrameCacheBytes = o.limits(), o.frameCacheBytes
	// Every stream reads the store through the Manager: the nodes of a
	// rollout's stage are served its target, the others its base.
	s.rollouts = s.newRollouts()
	xopts.Router = s.rollouts
	var csdsVisible func(context.Context) (func(string) bool, error)
	if o.nodeIdentity != "" {
		ids, err := newIdentityScopes(o, s.st, log)
		if err != nil {
			return nil, err
		}
		// A node is served its identity's scope and no other: not the default
		// scope either (nodescope.go).
		xopts.Authorize, xopts.ScopeOf, xopts.NoDefaultScope = ids.authorize, ids.scope, true
		csdsVisible = csdsVisibility(o.nodeIdentity, splitList(o.csdsReaders))
	}
	standing := localStanding(s.rollouts)
	if s.etcdRollouts != nil {
		xopts.Router, standing = s.etcdRollouts, s.etcdRollouts.Standing
	}
	s.xds = stream.New(s.st, xopts)
	s.rollouts.Attach(s.xds)
	if s.etcdRollouts != nil {
		s.etcdRollouts.Attach(s.xds)
	}
	if s.fleet, err = newFleetStatus(o, s.etcdCli, s.st, s.xds, standing, log); err != nil {
		return nil, err
	}
	aopts := admin.Options{
		Store: s.st, Streams: s.xds, Metrics: s.metrics,
		Source: adminSrc, Reloader: reloader,
		Ready: s.ready.Load, Token: o.adminToken, TokenFile: o.adminTokenFile, ClientCertificates: o.adminClientCA != "",
		CSDSVisible: csdsVisible, MaxBytes: o.adminMaxBytes, MaxPage: o.adminMaxPage, CSDSMaxBytes: o.csdsMaxBytes,
		Pprof: o.pprof,
	}
	if s.persister != nil {
		aopts.Snapshot = adminSnapshot{Persister: s.persister, interval: o.snapshotInterval, restored: &s.snapshot}
	}
	if s.etcd == nil {
		aopts.Rollouts = s.rollouts
	} else {
		// With etcd, what is served is etcd's: the rollouts are etcd's
		// (P/rollout/state, leanxds apply --rollout), and a rollback of this
		// replica's store alone would be undone by etcd's next change.
		aopts.Rollouts = s.etcdRollouts
		aopts.NoRollback = true
	}
	if s.fleet != nil {
		aopts.Fleet = s.fleet.reader
		s.metrics.Registry().MustRegister(s.fleet.publisher)
	}
	s.admin = admin.New(aopts)

	gopts := append(s.xds.GRPCOptions(),
		// Find dead clients (a proxy whose host vanished keeps no FIN coming),
		// and let clients ping as often as every 10s without being cut off.
		// --max-connection-age spreads clients over the replicas again.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: keepaliveTimeout,
			MaxConnectionAge: o.maxConnectionAge, MaxConnectionAgeGrace: o.maxConnectionAgeGrace}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	if o.tlsCert != "" {
		cfg, err := serverTLS(o.tlsCert, o.tlsKey, o.clientCA, log)
		if err != nil {
			return nil, err
		}
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	s.grpc = grpc.NewServer(gopts...)
	s.xds.Register(s.grpc)
	s.admin.RegisterCSDS(s.grpc)
	// For Kubernetes gRPC probes and grpcurl: the health service, and server
	// reflection (which lists the services and their messages).
	s.health = admin.NewHealth()
	s.health.Register(s.grpc)
	reflection.Register(s.grpc)
	return s, nil
}

// run serves until ctx ends, then drains.
func (s *server) run(ctx context.Context) error {
	// The admin server starts first, so that /healthz answers while a large
	// directory loads and /readyz tells when it is done.
	adminSrv, err := s.startAdmin()
	if err != nil {
		return err
	}
	defer shutdownHTTP(adminSrv)

	// The snapshot is restored before the first load: it is served if the
	// directory turns out invalid (or empty), and the directory replaces it
	// otherwise, sending nothing to clients for what did not change.
	s.restoreSnapshot(ctx)
	if err := s.initialLoad(ctx); err != nil {
		return err
	}
	stopPersister := s.startPersister(ctx)
	stopRollouts := s.startRollouts(ctx)

	lis, err := s.listenXDS(ctx)
	if err != nil {
		return fmt.Errorf("xDS: %w", err)
	}
	s.log.Info("xDS listening", "addr", lis.Addr().String(), "tls", s.opts.tlsCert != "",
		"mtls", s.opts.clientCA != "", "node_identity", s.opts.nodeIdentity, "scope_by", s.opts.scopeBy, "scope_map", s.opts.scopeMap,
		"csds", csdsGuard(s.opts.adminToken != "" || s.opts.adminTokenFile != "", s.opts.nodeIdentity, s.admin.Guard()))
	warnExposedXDS(s.log, lis.Addr(), s.opts.tlsCert != "")
	served := make(chan error, 1)
	go func() { served <- s.grpc.Serve(lis) }()
	stopFleet := s.fleet.start(ctx)

	// The source watches the directory from now on, and reloads it if it
	// changed since the initial load read it.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		_ = s.src.Run(watchCtx) // it logs and records its own errors
	}()
	etcdRolloutsDone := make(chan struct{})
	go func() {
		defer close(etcdRolloutsDone)
		if s.etcdRollouts != nil {
			_ = s.etcdRollouts.Run(watchCtx) // it logs its own errors; it resigns when stopped
		}
	}()
	if s.etcdCli != nil {
		defer s.etcdCli.Close()
	}

	var serveErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "drain_timeout", s.opts.drainTimeout)
	case serveErr = <-served:
		s.log.Error("xDS server stopped", "err", serveErr)
	}
	stopWatch()
	<-watched
	<-etcdRolloutsDone
	stopRollouts()
	// The replica's nodes leave the fleet status as they leave it.
	stopFleet()
	// The store no longer changes: the last snapshot is written while the
	// streams drain.
	persisted := make(chan struct{})
	go func() {
		stopPersister()
		close(persisted)
	}()
	s.drain()
	<-persisted
	s.log.Info("stopped")
	return serveErr
}

// keepaliveTimeout is how long a client has to answer a keepalive ping, and how
// long data sent to it may stay unacknowledged (TCP_USER_TIMEOUT).
const keepaliveTimeout = 10 * time.Second

// listenXDS opens the xDS port, as stream.Server.Listener bounds and tracks its
// connections. Its socket carries TCP_USER_TIMEOUT (where the system has it),
// which accepted connections inherit: grpc-go sets it only on the
// *net.TCPConn a listener returns, which a tracked connection is not.
func (s *server) listenXDS(ctx context.Context) (net.Listener, error) {
	lc := listenConfig(keepaliveTimeout)
	lis, err := lc.Listen(ctx, "tcp", s.opts.listen)
	if err != nil {
		return nil, err
	}
	return s.xds.Listener(lis), nil
}

// startAdmin starts the admin HTTP server, unless --admin is empty.
func (s *server) startAdmin() (*http.Server, error) {
	if s.opts.admin == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", s.opts.admin)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	srv := &http.Server{Handler: s.admin, ReadHeaderTimeout: 10 * time.Second}
	if s.opts.adminTLSCert != "" {
		cfg, err := adminTLS(s.opts.adminTLSCert, s.opts.adminTLSKey, s.opts.adminClientCA, s.log)
		if err != nil {
			lis.Close()
			return nil, err
		}
		srv.TLSConfig = cfg
	}
	s.adminAddr = lis.Addr()
	go func() {
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(lis, "", "")
		} else {
			err = srv.Serve(lis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server", "err", err)
		}
	}()
	s.log.Info("admin listening", "addr", lis.Addr().String(), "tls", srv.TLSConfig != nil,
		"debug_pages", s.admin.Guard(), "mutating_endpoints", s.admin.MutationGuard())
	warnExposedAdmin(s.log, lis.Addr(), s.opts.adminToken != "" || s.opts.adminTokenFile != "", srv.TLSConfig != nil)
	return srv, nil
}

// initialLoad applies the directory before the xDS port opens, so that no client
// is ever served an empty config by mistake. A directory that is rejected
// (invalid, or with dangling references) is fatal, unless the store already
// holds a config (restored from a snapshot): then that is served until the
// directory is fixed.
//
// Files being written are waited for until they are quiet, or ctx ends.
func (s *server) initialLoad(ctx context.Context) error {
	if s.etcd != nil {
		return s.initialEtcdLoad(ctx)
	}
	_, err := s.source.Load(ctx)
	v := s.st.View()
	if _, busy := errors.AsType[*source.NotQuietError](err); busy && len(v.Scopes()) == 0 {
		return fmt.Errorf("nothing to serve: stopped while waiting for the config files to be quiet: %w", err)
	}
	if err != nil && len(v.Scopes()) == 0 {
		hint := ""
		if source.HasDangling(err) {
			hint = "\n(--allow-dangling serves a config with dangling references, warning about each)"
		}
		hint += s.noSnapshotHint()
		return fmt.Errorf("nothing to serve: config %s is invalid:\n  %s%s", s.opts.configDir, strings.Join(source.ErrorLines(err), "\n  "), hint)
	}
	msg := "config loaded"
	if err != nil {
		msg = "serving the restored snapshot: the config directory is applied once it is valid and holds resources"
		if _, held := errors.AsType[*source.HeldError](err); held {
			msg = "serving the restored snapshot: the config directory would delete too much of it, and is applied once confirmed"
		}
	}
	total := resourcesIn(v)
	attrs := append([]any{"dir", s.opts.configDir}, servedAttrs(v)...)
	if err != nil {
		s.log.Warn(msg, attrs...)
	} else {
		s.log.Info(msg, attrs...)
	}
	if total == 0 {
		s.log.Warn("the config directory holds no resource: clients are served nothing", "dir", s.opts.configDir)
	}
	s.ready.Store(true)
	s.health.SetServing(true)
	return nil
}

// initialEtcdLoad lists etcd before the xDS port opens, waiting for it at most
// --etcd-load-timeout. If etcd does not answer, a restored snapshot is served
// (and etcd applied once it answers); without one, serve exits.
func (s *server) initialEtcdLoad(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, s.opts.etcdLoadTimeout)
	defer cancel()
	_, err := s.etcd.Load(lctx)
	v := s.st.View()
	if err != nil && len(v.Scopes()) == 0 {
		return fmt.Errorf("nothing to serve: etcd %s did not answer within %s (--etcd-load-timeout): %v%s",
			s.opts.etcd, s.opts.etcdLoadTimeout, err, s.noSnapshotHint())
	}
	attrs := append([]any{"source", s.opts.etcd.String(), "generation", s.etcd.Status().Generation}, servedAttrs(v)...)
	switch {
	case err != nil:
		s.log.Warn("serving the restored snapshot: etcd does not answer; its content is applied once it does", append(attrs, "err", err)...)
	case resourcesIn(v) == 0:
		s.log.Warn("etcd holds no resource under the prefix: clients are served nothing", attrs...)
	default:
		s.log.Info("config loaded", attrs...)
	}
	s.ready.Store(true)
	return nil
}

// resourcesIn counts the resources of every scope of v.
func resourcesIn(v store.View) int {
	total := 0
	for _, scope := range v.Scopes() {
		for _, t := range v.Tables(scope) {
			total += t.Len()
		}
	}
	return total
}

// servedAttrs are the log attributes of what v serves: scopes and resources,
// per scope when they are few.
func servedAttrs(v store.View) []any {
	perScope := make([]any, 0, len(v.Scopes()))
	for _, scope := range v.Scopes() {
		n := 0
		for _, t := range v.Tables(scope) {
			n += t.Len()
		}
		perScope = append(perScope, slog.Int(scope, n))
	}
	attrs := []any{"scopes", len(v.Scopes()), "resources", resourcesIn(v)}
	if len(perScope) <= maxScopesLogged {
		attrs = append(attrs, slog.Group("per_scope", perScope...))
	}
	return attrs
}

// maxScopesLogged bounds the scopes the startup log lists one by one: with
// --scope-by id there may be one per node.
const maxScopesLogged = 50

// drain stops the xDS port: the health service says NOT_SERVING (and ends its
// watches), then stop accepting, send GOAWAY on every connection (GracefulStop)
// so clients reconnect elsewhere, end every stream with Unavailable (Shutdown),
// and close what is still open after the drain timeout.
func (s *server) drain() {
	s.health.Shutdown()
	s.admin.Shutdown()
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	s.xds.Shutdown()
	select {
	case <-stopped:
	case <-time.After(s.opts.drainTimeout):
		s.log.Warn("drain timeout: closing the remaining connections")
		s.grpc.Stop()
		<-stopped
	}
}

func shutdownHTTP(srv *http.Server) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
