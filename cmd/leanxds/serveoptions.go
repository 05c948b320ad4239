package main

import (
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/stream"
)

// serveOptions are the flags of `leanxds serve`.
type serveOptions struct {
	configDir string
	// etcd is --source etcd://..., parsed; nil with --config.
	etcd *source.EtcdAddress
	// sourceAddr is --source as given.
	sourceAddr string
	// etcdClient are --etcd-ca, --etcd-cert, --etcd-key and the credentials
	// of LEANXDS_ETCD_USERNAME and LEANXDS_ETCD_PASSWORD.
	etcdClient source.EtcdClientOptions
	// etcdLoadTimeout bounds the first list of etcd at start.
	etcdLoadTimeout time.Duration
	listen          string
	admin           string
	scopeBy         string
	noDefaultScope  bool
	tlsCert         string
	tlsKey          string
	clientCA        string
	nodeIdentity    string
	csdsReaders     string
	logLevel        string
	logFormat       string
	debounce        time.Duration
	drainTimeout    time.Duration
	// allowDangling serves a directory whose resources refer to resources it
	// does not define, warning about each, instead of refusing it.
	allowDangling bool
	// snapshot is the URL of the snapshot restored at start and written while
	// serving (persist.Open); "" for none.
	snapshot         string
	snapshotInterval time.Duration
	// restoreTimeout bounds the restore of the snapshot at start: past it, serve
	// goes on from the config directory alone.
	restoreTimeout time.Duration
	// scopeMap is the file mapping certificate identities to scopes under
	// --node-identity; "" for none (an identity names its scope).
	scopeMap string
	// csdsMaxBytes bounds the encoded size of a CSDS response.
	csdsMaxBytes int
	// adminMaxBytes and adminMaxPage bound a /debug/ page: its JSON, and
	// the entries it lists.
	adminMaxBytes int
	adminMaxPage  int
	// adminToken, when set, is the bearer token that CSDS and the admin pages
	// listing nodes require; without it they answer local callers only.
	adminToken string
	// adminTokenFile names a file holding the admin token, read again when it
	// changes; exclusive with adminToken.
	adminTokenFile string
	// adminTLSCert and adminTLSKey make the admin server speak HTTPS;
	// adminClientCA verifies the client certificates it is presented: a
	// verified one may call the mutating endpoints.
	adminTLSCert  string
	adminTLSKey   string
	adminClientCA string
	// history is how many revisions of each scope the store keeps
	// (store.KeepHistory): what leanxds history lists and rollback reaches.
	history int
	// rollout stages every reload of the directory after the first
	// (--rollout 1%,10%,100%); "" applies reloads to every node at once.
	rollout          string
	rolloutWindow    time.Duration
	rolloutMaxNACKs  int
	rolloutOnTimeout string
	// pprof mounts net/http/pprof on the admin server's /debug/pprof/.
	pprof bool
	// Operating limits (stream.Limits, stream.Options.FrameCacheBytes).
	maxNameBytes        int
	maxRequestNameBytes int
	maxNodeBytes        int
	frameCacheBytes     int
	// dir holds the limits of the config directory source: the bytes a reload
	// reads (--max-file-bytes, --max-dir-bytes) and the deletion guard
	// (--max-delete-fraction, --delete-guard-min). newServer adds the rest.
	dir source.DirOptions
	// Connection and stream limits (stream.Options); 0 turns each off.
	maxConns            int
	maxStreamsPerConn   int
	firstRequestTimeout time.Duration
	sendTimeout         time.Duration
	// maxConnectionAge and its grace close a client's connection after that
	// long (GOAWAY, then the grace for its streams), so that clients spread
	// over the replicas again; 0 is off.
	maxConnectionAge      time.Duration
	maxConnectionAgeGrace time.Duration
	// fleet holds the flags of fleet status (fleetpublish.go).
	fleet fleetOptions
}

const serveAbout = `
Serve the resources of a config directory (or of etcd: --source) to Envoy proxies and proxyless gRPC
clients over xDS (ADS and the per-type services, with CSDS on the same port),
with an admin HTTP server for metrics and debugging.

The directory's *.yaml, *.yml and *.json files form the default scope; the files
of a subdirectory NAME form scope NAME (see docs/config.md). The directory is
watched: after a change it is read again and applied as one atomic commit, or,
if any file is invalid or a resource refers to one its scope does not define (a
route to a missing cluster, an EDS cluster without its endpoints...), rejected
whole while the last good config keeps being served; --allow-dangling serves
such references with a warning instead. SIGTERM or SIGINT stops the server:
clients are told to reconnect elsewhere, and the process exits 0 once their
streams are closed.

With --snapshot, what is served is also saved (every --snapshot-interval if it
changed, and at shutdown) and restored at start before any client is served: a
restarted server sends its clients nothing they already hold, and serves the
snapshot if the directory is invalid or empty at start (see docs/serve.md).

With --source etcd://h1:2379,h2:2379/prefix, the content is read from etcd instead
(docs/etcd.md): listed at one revision, then followed by a watch, each etcd
revision applied as one atomic commit. Values that are not valid resources are
refused one by one (the last good value of the key is served); while etcd does not
answer, the last good content is served and /readyz and the metrics say so.

Every flag can also be set by the environment variable named after it.`

func serveCommand(out io.Writer) (*command, *serveOptions) {
	c := newCommand("serve", "leanxds serve --config DIR | --source etcd://HOST:PORT/PREFIX [flags]", serveAbout, out)
	c.env = true
	o := &serveOptions{}
	fs := c.fs
	fs.StringVar(&o.configDir, "config", "", "config `DIR`ectory to serve (this or --source)")
	fs.StringVar(&o.sourceAddr, "source", "", "serve what etcd holds under a prefix instead of a directory: `etcd://host:port[,host:port...][/prefix]`\n"+
		"(prefix /leanxds by default; see docs/etcd.md). Credentials come from LEANXDS_ETCD_USERNAME and LEANXDS_ETCD_PASSWORD")
	fs.StringVar(&o.etcdClient.CAFile, "etcd-ca", "", "with --source etcd://, the PEM CA `file` that signs etcd's certificates: speak TLS to etcd")
	fs.StringVar(&o.etcdClient.CertFile, "etcd-cert", "", "with --source etcd://, the PEM client certificate `file` presented to etcd (TLS)")
	fs.StringVar(&o.etcdClient.KeyFile, "etcd-key", "", "with --source etcd://, the PEM private key `file` of --etcd-cert")
	fs.DurationVar(&o.etcdLoadTimeout, "etcd-load-timeout", 10*time.Second, "with --source etcd://, how long the first read of etcd may take at start; past it the restored\n"+
		"--snapshot is served (and etcd read once it answers), or, without one, serve exits")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:18000", "`address` of the xDS gRPC port (also CSDS); port 0 picks a free port")
	fs.StringVar(&o.admin, "admin", defaultAdminAddr, "`address` of the admin HTTP server (/metrics, /debug/..., /healthz, /readyz); empty disables it.\nIt speaks plain HTTP unless --admin-tls-cert is set: keep it on loopback or a private network")
	fs.StringVar(&o.scopeBy, "scope-by", "cluster", "what names the `scope` a node is served: cluster (node.cluster), id (node.id), or metadata:KEY (a string in node.metadata)")
	fs.BoolVar(&o.noDefaultScope, "no-default-scope", false, "serve a node whose scope has no resources nothing, instead of the default scope")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file` of the xDS port: serve TLS (reloaded when the file changes)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.StringVar(&o.clientCA, "client-ca", "", "PEM CA `file`: require client certificates signed by it (mTLS)")
	fs.StringVar(&o.nodeIdentity, "node-identity", "", "with --client-ca, what in a client's certificate its node id must equal, else the stream is refused\n(PermissionDenied): `mode` san-uri, san-dns or cn. The node is then served its identity's scope only\n(see --scope-map): a node whose scope holds nothing, or whose --scope-by claims another scope, is refused")
	fs.StringVar(&o.scopeMap, "scope-map", "", "with --node-identity, a YAML `file` mapping certificate identities to scopes (spiffe://example.org/ns/prod/sa/edge: edge),\n"+
		"read again when it changes; without it, an identity names its scope itself")
	fs.StringVar(&o.csdsReaders, "csds-readers", "", "with --node-identity, the certificate `identities` (comma-separated) that may read every node over CSDS;\nother clients see only their own node")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text or json")
	fs.DurationVar(&o.debounce, "debounce", source.DefaultDebounce, "how long the config directory must be quiet after a change before it is reloaded")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long to wait for streams to close before closing the connections")
	fs.BoolVar(&o.allowDangling, "allow-dangling", false, "serve a config whose resources refer to resources their scope does not define (dangling references),\n"+
		"with a warning for each, instead of rejecting it: clients wait for what is missing, and drop its traffic")
	fs.StringVar(&o.snapshot, "snapshot", "", "`URL` of a snapshot of the served config, restored at start and written while serving:\n"+
		"file:///path or a plain path (the previous ones are kept as path.1 to path.3),\n"+
		"or s3://bucket/key?region=REGION[&endpoint=URL] (S3 or an S3-compatible store); empty: none")
	fs.DurationVar(&o.snapshotInterval, "snapshot-interval", persist.DefaultInterval, "how often the served config is written to --snapshot if it changed (and once more at shutdown)")
	fs.DurationVar(&o.restoreTimeout, "restore-timeout", defaultRestoreTimeout, "how long the restore of --snapshot at start may take; past it, the config directory is served alone\n(if it is invalid, serve exits)")
	fs.IntVar(&o.csdsMaxBytes, "csds-max-bytes", admin.DefaultCSDSMaxBytes, "the largest CSDS response, in `bytes`: a FetchClientStatus answer over it is refused (ResourceExhausted),\n"+
		"a StreamClientStatus answer is sent in several messages within it")
	fs.IntVar(&o.adminMaxBytes, "admin-max-bytes", admin.DefaultMaxBytes, "the largest /debug/ page of the admin server, in `bytes` of JSON: longer lists are paged (?offset, ?limit)")
	fs.IntVar(&o.adminMaxPage, "admin-max-page", admin.DefaultMaxPage, "the most `entries` (streams, resources) of a /debug/ page, and its default ?limit")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer `token` that CSDS (gRPC metadata \"authorization: Bearer TOKEN\") and the admin /debug/ pages (the\n"+
		"Authorization header) require: they list every node and what it is served. Without it, they answer\n"+
		"callers on this host only. It also lets a caller use the mutating endpoints (POST /reload, /admin/...).\n"+
		"Prefer --admin-token-file, or the environment variable: a command line is visible to every local user")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "`file` whose first line is the admin token, as --admin-token (exclusive with it); read again when it\n"+
		"changes, so a token is rotated without a restart. The mutating admin endpoints (POST /reload,\n"+
		"/admin/rollout/..., /admin/rollback) need the token or a certificate of --admin-client-ca, and are off without either")
	fs.StringVar(&o.adminTLSCert, "admin-tls-cert", "", "PEM certificate `file` of the admin server: serve HTTPS (reloaded when the file changes)")
	fs.StringVar(&o.adminTLSKey, "admin-tls-key", "", "PEM private key `file` of --admin-tls-cert")
	fs.StringVar(&o.adminClientCA, "admin-client-ca", "", "with --admin-tls-cert, a PEM CA `file`: a client certificate it signed may call the mutating admin endpoints\n"+
		"and read the /debug/ pages (callers without one are served as without it: /metrics and the probes stay open)")
	fs.IntVar(&o.history, "history", 10, "how many `revisions` of each scope are kept, in memory and in --snapshot: what 'leanxds history' lists\n"+
		"and 'leanxds rollback --to' reaches")
	fs.StringVar(&o.rollout, "rollout", "", "stage every reload of the config directory after the first: `stages` such as 1%,10%,100% (a share of\n"+
		"each changed scope's nodes, by a stable hash of the node id), ids=a|b or metadata.KEY=VALUE; each stage\n"+
		"is served the change once every node of the one before ACKed it, a NACK rolls it back (docs/rollouts.md)")
	fs.DurationVar(&o.rolloutWindow, "rollout-window", rollout.DefaultWindow, "with --rollout, how long a stage's nodes have to ACK the change")
	fs.IntVar(&o.rolloutMaxNACKs, "rollout-max-nacks", 1, "with --rollout, how many `nodes` of a stage must NACK the change for it to be rolled back")
	fs.StringVar(&o.rolloutOnTimeout, "rollout-on-timeout", "hold", "with --rollout, what a stage whose window ends before every node ACKed does: `hold` (wait for\n"+
		"'leanxds rollout promote' or 'abort') or rollback")
	fs.BoolVar(&o.pprof, "pprof", false, "serve the Go runtime profiles (net/http/pprof) on the admin server's /debug/pprof/, guarded like its\n"+
		"other /debug/ pages (--admin-token, or callers on this host only)")
	fs.IntVar(&o.maxNameBytes, "max-name-bytes", stream.DefaultMaxNameBytes, "longest resource name a request may carry, in `bytes`: a longer one ends its stream (InvalidArgument)")
	fs.IntVar(&o.maxRequestNameBytes, "max-request-name-bytes", stream.DefaultMaxRequestNameBytes, "most `bytes` of resource names one request may carry in all: more ends its stream (InvalidArgument)")
	fs.IntVar(&o.maxNodeBytes, "max-node-bytes", stream.DefaultMaxNodeBytes, "largest node a stream may open with, in `bytes` (encoded): a larger one is refused (InvalidArgument)")
	fs.IntVar(&o.frameCacheBytes, "frame-cache-bytes", stream.DefaultFrameCacheBytes, "most `bytes` of encoded responses kept to share between streams sending the same content")
	fs.Int64Var(&o.dir.MaxFileBytes, "max-file-bytes", source.DefaultMaxFileBytes, "refuse a config file larger than this many `bytes`, before reading it: the reload is rejected")
	fs.Int64Var(&o.dir.MaxDirBytes, "max-dir-bytes", source.DefaultMaxDirBytes, "refuse a config directory whose files hold more than this many `bytes` together, before reading them")
	fs.Float64Var(&o.dir.MaxDeleteFraction, "max-delete-fraction", source.DefaultMaxDeleteFraction, "hold back a reload that would delete more than this `fraction` of a type's resources in a scope\n"+
		"until 'leanxds reload --confirm' or the files change again; 1 turns the guard off")
	fs.IntVar(&o.dir.DeleteGuardMin, "delete-guard-min", source.DefaultDeleteGuardMin, "the fewest `deletions` of a type in a scope that --max-delete-fraction holds back")
	fs.IntVar(&o.maxConns, "max-conns", 10_000, "most connections the xDS port serves at once; past it a new connection is closed as soon as it is accepted (0: no limit)")
	fs.IntVar(&o.maxStreamsPerConn, "max-streams-per-conn", 100, "most streams one connection may hold at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; 0: no limit)")
	fs.DurationVar(&o.firstRequestTimeout, "first-request-timeout", 30*time.Second, "end a stream that sends no request within this long of opening it, with DEADLINE_EXCEEDED (0: never)")
	fs.DurationVar(&o.sendTimeout, "send-timeout", time.Minute, "close the connection of a client that has taken none of a response for this long: it stopped reading (0: never)")
	fs.DurationVar(&o.maxConnectionAge, "max-connection-age", 0, "close a client's connection after this long (±10%), with GOAWAY: the client reconnects, through its\n"+
		"load balancing, so that clients spread over the replicas again after a scale-out or a failover (0: never; see docs/etcd.md)")
	fs.DurationVar(&o.maxConnectionAgeGrace, "max-connection-age-grace", 0, "after --max-connection-age, how long a connection's streams may go on before it is closed (0: no limit,\n"+
		"which leaves an xDS stream open: set it for the connection to close)")
	o.fleet.addFlags(fs)
	return c, o
}

// check validates the flags together.
func (o *serveOptions) check() error {
	switch {
	case o.configDir == "" && o.sourceAddr == "":
		return usageErrorf("serve: --config DIR is required (or --source etcd://...)")
	case o.configDir != "" && o.sourceAddr != "":
		return usageErrorf("serve: --config and --source are exclusive: serve a directory or etcd")
	case o.sourceAddr == "" && o.fleet.etcd == "" && (o.etcdClient.CAFile != "" || o.etcdClient.CertFile != "" || o.etcdClient.KeyFile != ""):
		return usageErrorf("serve: --etcd-ca, --etcd-cert and --etcd-key need --source etcd://... or --fleet-etcd")
	case (o.etcdClient.CertFile == "") != (o.etcdClient.KeyFile == ""):
		return usageErrorf("serve: --etcd-cert and --etcd-key go together")
	case o.etcdLoadTimeout <= 0:
		return usageErrorf("serve: --etcd-load-timeout must be positive, not %s", o.etcdLoadTimeout)
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return usageErrorf("serve: --tls-cert and --tls-key go together")
	case o.clientCA != "" && o.tlsCert == "":
		return usageErrorf("serve: --client-ca needs --tls-cert and --tls-key: client certificates are checked over TLS")
	case o.nodeIdentity != "" && o.clientCA == "":
		return usageErrorf("serve: --node-identity needs --client-ca: only a verified certificate proves who a client is")
	case o.csdsReaders != "" && o.nodeIdentity == "":
		return usageErrorf("serve: --csds-readers needs --node-identity")
	case o.scopeMap != "" && o.nodeIdentity == "":
		return usageErrorf("serve: --scope-map needs --node-identity: it maps certificate identities to scopes")
	case o.debounce < 0 || o.drainTimeout < 0:
		return usageErrorf("serve: --debounce and --drain-timeout must not be negative")
	case o.maxConns < 0 || o.maxStreamsPerConn < 0 || o.firstRequestTimeout < 0 || o.sendTimeout < 0:
		return usageErrorf("serve: --max-conns, --max-streams-per-conn, --first-request-timeout and --send-timeout must not be negative (0 turns a limit off)")
	case o.maxConnectionAge < 0 || o.maxConnectionAgeGrace < 0:
		return usageErrorf("serve: --max-connection-age and --max-connection-age-grace must not be negative (0 turns them off)")
	case o.maxConnectionAgeGrace > 0 && o.maxConnectionAge == 0:
		return usageErrorf("serve: --max-connection-age-grace needs --max-connection-age")
	case o.snapshotInterval <= 0:
		return usageErrorf("serve: --snapshot-interval must be positive, not %s", o.snapshotInterval)
	case o.restoreTimeout <= 0:
		return usageErrorf("serve: --restore-timeout must be positive, not %s", o.restoreTimeout)
	case o.adminToken != "" && o.adminTokenFile != "":
		return usageErrorf("serve: --admin-token and --admin-token-file are exclusive")
	case (o.adminTLSCert == "") != (o.adminTLSKey == ""):
		return usageErrorf("serve: --admin-tls-cert and --admin-tls-key go together")
	case o.adminClientCA != "" && o.adminTLSCert == "":
		return usageErrorf("serve: --admin-client-ca needs --admin-tls-cert and --admin-tls-key: client certificates are checked over TLS")
	case o.history < 1:
		return usageErrorf("serve: --history must be at least 1, not %d", o.history)
	case o.rolloutWindow <= 0:
		return usageErrorf("serve: --rollout-window must be positive, not %s", o.rolloutWindow)
	case o.rolloutMaxNACKs < 1:
		return usageErrorf("serve: --rollout-max-nacks must be at least 1, not %d", o.rolloutMaxNACKs)
	case o.rolloutOnTimeout != "hold" && o.rolloutOnTimeout != "rollback":
		return usageErrorf("serve: --rollout-on-timeout %q: want hold or rollback", o.rolloutOnTimeout)
	case o.rollout != "" && o.sourceAddr != "":
		return usageErrorf("serve: --rollout stages the reloads of a config directory (--config); with --source etcd://, 'leanxds apply --rollout' stages a change")
	case o.csdsMaxBytes <= 0:
		return usageErrorf("serve: --csds-max-bytes must be positive, not %d", o.csdsMaxBytes)
	case o.adminMaxBytes <= 0 || o.adminMaxPage <= 0:
		return usageErrorf("serve: --admin-max-bytes and --admin-max-page must be positive")
	case o.maxNameBytes <= 0 || o.maxRequestNameBytes <= 0 || o.maxNodeBytes <= 0 || o.frameCacheBytes <= 0:
		return usageErrorf("serve: --max-name-bytes, --max-request-name-bytes, --max-node-bytes and --frame-cache-bytes must be positive")
	case o.dir.MaxFileBytes <= 0 || o.dir.MaxDirBytes <= 0:
		return usageErrorf("serve: --max-file-bytes and --max-dir-bytes must be positive")
	case !(o.dir.MaxDeleteFraction > 0) || o.dir.DeleteGuardMin < 0:
		return usageErrorf("serve: --max-delete-fraction must be positive (1 turns the guard off), --delete-guard-min not negative")
	}
	if o.sourceAddr != "" {
		a, err := source.ParseEtcdAddress(o.sourceAddr)
		if err != nil {
			return usageErrorf("serve: --source: %v", err)
		}
		o.etcd = &a
	}
	switch o.nodeIdentity {
	case "", identitySANURI, identitySANDNS, identityCN:
	default:
		return usageErrorf("serve: --node-identity %q: want san-uri, san-dns or cn", o.nodeIdentity)
	}
	if _, err := scopeFunc(o.scopeBy); err != nil {
		return err
	}
	return o.fleet.check(o.sourceAddr != "")
}

// limits returns the stream limits of the flags.
func (o *serveOptions) limits() stream.Limits {
	return stream.Limits{MaxNameBytes: o.maxNameBytes, MaxRequestNameBytes: o.maxRequestNameBytes, MaxNodeBytes: o.maxNodeBytes}
}

// scopeFunc parses --scope-by.
func scopeFunc(by string) (stream.ScopeFunc, error) {
	switch {
	case by == "cluster":
		return stream.ScopeByCluster, nil
	case by == "id":
		return stream.ScopeByNodeID, nil
	case strings.HasPrefix(by, "metadata:") && len(by) > len("metadata:"):
		return stream.ScopeByMetadata(strings.TrimPrefix(by, "metadata:")), nil
	}
	return nil, usageErrorf("serve: --scope-by %q: want cluster, id or metadata:KEY", by)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newLogger returns the logger of --log-level and --log-format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: durationString}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", format)
}

// durationString renders a time.Duration as its String ("10s"), not as the
// nanoseconds the JSON handler writes, so text and JSON logs read alike.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// off maps a limit of serve, where 0 turns it off, to stream.Options, where 0
// is the default and a negative value turns it off.
func off[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
