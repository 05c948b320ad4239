package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Defaults of Options.
const (
	// DefaultMaxBytes is the default budget of one /debug/ page: a few
	// hundred streams of /debug/clients, or a node's thousands of resources
	// over a few pages; small enough that a page costs little memory.
	DefaultMaxBytes = 4 << 20
	// DefaultMaxPage is the default and largest ?limit of a page.
	DefaultMaxPage = 1000
	// DefaultCSDSMaxBytes is the default CSDS response budget: gRPC's default
	// receive limit (grpc-go, grpc-java and gRPC C++ all take 4 MiB), which the
	// budget counts exactly, so a client with default settings receives every
	// answer the budget lets through.
	DefaultCSDSMaxBytes = 4 << 20
)

// Streams is what the admin server reads of the xDS streams: a
// *stream.Server. Each call returns a snapshot; none locks out the streams.
type Streams interface {
	// Streams returns the status of every stream that sent its first request.
	Streams() []stream.StreamStatus
	// AwaitingFirstRequest returns the streams that have sent no request yet.
	AwaitingFirstRequest() []stream.StreamInfo
	// LimitStats reports what the connection and stream limits see.
	LimitStats() stream.LimitStats
}

// Options configure an Admin. Store and Streams are required; the rest is
// optional, and a zero limit takes its default.
type Options struct {
	// Store is the store the streams serve.
	Store *store.Store
	// Streams are the xDS streams shown and reported over CSDS.
	Streams Streams
	// Metrics are served on /metrics; nil makes a set of its own, which
	// counts nothing of the streams (Metrics.Hooks must be given to
	// stream.New for that). New registers the source's and the streams'
	// collectors on it: one Metrics serves one Admin.
	Metrics *Metrics
	// Source is where the served config comes from, shown on the index page,
	// /readyz, /debug/reload and the metrics; nil for none.
	Source Source
	// Reloader, if not nil, answers POST /reload.
	Reloader Reloader
	// Rollouts, if not nil, are the staged rollouts of the store (a
	// *rollout.Manager), shown on /debug/rollouts and driven by POST
	// /admin/rollout/promote, /admin/rollout/abort and /admin/rollback.
	Rollouts Rollouts
	// NoRollback leaves out POST /admin/rollback, which otherwise rolls the
	// store back (through Rollouts when set, store.RollbackTo otherwise): for
	// a store whose source would undo a rollback (etcd: roll back there).
	NoRollback bool
	// Snapshot is the snapshot kept of the store (package persist), shown on
	// the index page and /readyz; nil for none.
	Snapshot Snapshot
	// Ready tells whether an initial config is served (/readyz); nil is
	// always ready.
	Ready func() bool
	// Token, when set, is the bearer token that CSDS and the pages listing
	// nodes require; without it they answer callers on this host only. It is
	// also a credential of the mutating endpoints (POST /reload, /admin/...).
	Token string
	// TokenFile, when set, names a file whose first line is an admin token,
	// accepted as Token is: the file is read again when it changes. A
	// configured file counts as a token set even while it holds none.
	TokenFile string
	// ClientCertificates tells that the admin HTTP server verifies client
	// certificates (its TLS config has ClientCAs): a caller whose certificate
	// it verified reads every page and may call the mutating endpoints.
	ClientCertificates bool
	// CSDSVisible decides, for a CSDS caller that presents no token, which
	// nodes it may see, or refuses it (with a gRPC status error); nil leaves
	// it to the token rule. See auth.go.
	CSDSVisible func(ctx context.Context) (func(nodeID string) bool, error)
	// MaxBytes bounds the JSON of a /debug/ page (DefaultMaxBytes); MaxPage
	// the entries it lists and its largest ?limit (DefaultMaxPage).
	MaxBytes int
	MaxPage  int
	// CSDSMaxBytes bounds the encoded size of each CSDS response
	// (DefaultCSDSMaxBytes).
	CSDSMaxBytes int
	// Pprof mounts net/http/pprof's profiles on /debug/pprof/, guarded like
	// the other /debug/ pages (the token, or callers on this host only);
	// off, /debug/pprof/ is not found.
	Pprof bool
	// Fleet, if not nil, is the status every replica of the fleet publishes,
	// shown on /debug/fleet (package admin/fleet reads it from etcd).
	Fleet Fleet
}

// Admin is the admin HTTP handler and the CSDS service of one xDS server.
type Admin struct {
	opts    Options
	auth    adminAuth
	metrics *Metrics
	mux     *http.ServeMux
	csds    *csdsServer
	// pages are the HTML pages' templates.
	pages *template.Template
	// done is closed by Shutdown, to end CSDS streams.
	done     chan struct{}
	shutdown sync.Once
}

// New returns the admin server of the store and streams of o. Serve it with
// an http.Server (its ServeHTTP), and register CSDS with RegisterCSDS.
func New(o Options) *Admin {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxPage <= 0 {
		o.MaxPage = DefaultMaxPage
	}
	if o.CSDSMaxBytes <= 0 {
		o.CSDSMaxBytes = DefaultCSDSMaxBytes
	}
	a := &Admin{opts: o, metrics: o.Metrics, done: make(chan struct{}),
		auth: adminAuth{token: newAdminToken(o.Token, o.TokenFile), clientCerts: o.ClientCertificates}}
	if a.metrics == nil {
		a.metrics = NewMetrics(o.Store)
	}
	a.metrics.reg.MustRegister(newLimitsCollector(o.Streams))
	if o.Source != nil {
		a.metrics.reg.MustRegister(newSourceCollector(o.Source))
	}
	if c, ok := o.Rollouts.(prometheus.Collector); ok {
		a.metrics.reg.MustRegister(c)
	}
	a.pages = htmlPages()
	a.csds = &csdsServer{st: o.Store, streams: o.Streams, maxBytes: o.CSDSMaxBytes, done: a.done,
		visible: csdsAccess(a.auth.token, o.CSDSVisible)}
	a.mux = a.routes()
	return a
}

// ServeHTTP serves the admin pages.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// RegisterCSDS registers the Client Status Discovery Service on g.
func (a *Admin) RegisterCSDS(g grpc.ServiceRegistrar) {
	statusv3.RegisterClientStatusDiscoveryServiceServer(g, a.csds)
}

// Shutdown ends the open CSDS streams, which would otherwise wait for their
// client's next request: call it before stopping the gRPC server gracefully.
func (a *Admin) Shutdown() { a.shutdown.Do(func() { close(a.done) }) }

// Metrics returns the metrics served on /metrics.
func (a *Admin) Metrics() *Metrics { return a.metrics }

// Guard says how the pages that list nodes are guarded, for a startup log:
// "admin token", or "callers on this host only".
func (a *Admin) Guard() string { return a.auth.String() }

// MutationGuard says how the endpoints that change what is served are
// guarded, for a startup log: "admin token", "client certificate", or "off
// (...)".
func (a *Admin) MutationGuard() string { return a.auth.mutations() }

// routes builds the admin mux. It is read-only but for POST /reload, which
// asks the source to read its config again (and may confirm a held reload),
// and the endpoints under /admin/ (rollouts and rollback). The pages that
// list nodes answer callers with the admin token or a verified client
// certificate, or, without a token, local callers; the mutating endpoints
// answer callers with the token or a verified certificate only, and refuse
// browsers' cross-origin requests (auth.go).
func (a *Admin) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.handleIndex)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, text := a.readiness()
		if !ready {
			http.Error(w, text, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, text)
	})
	// The debug pages list every node and what it is served: see auth.go.
	mux.Handle("GET /debug/clients", requireAdmin(a.auth, http.HandlerFunc(a.handleClients)))
	mux.Handle("GET /debug/config", requireAdmin(a.auth, http.HandlerFunc(a.handleConfig)))
	if a.opts.Source != nil {
		mux.Handle("GET /debug/reload", requireAdmin(a.auth, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, a.opts.Source.SourceStatus())
		})))
	}
	if a.opts.Pprof {
		// Index serves the named profiles (heap, goroutine, ...) below it;
		// symbol also takes POST.
		mux.Handle("GET /debug/pprof/", requireAdmin(a.auth, http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", requireAdmin(a.auth, http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", requireAdmin(a.auth, http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", requireAdmin(a.auth, http.HandlerFunc(pprof.Symbol)))
		mux.Handle("POST /debug/pprof/symbol", requireAdmin(a.auth, http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", requireAdmin(a.auth, http.HandlerFunc(pprof.Trace)))
	}
	if a.opts.Fleet != nil {
		mux.Handle("GET /debug/fleet", requireAdmin(a.auth, http.HandlerFunc(a.handleFleet)))
	}
	if a.opts.Reloader != nil {
		mux.Handle("POST /reload", requireMutation(a.auth, http.HandlerFunc(a.handleReload)))
	}
	mux.Handle("GET /debug/history", requireAdmin(a.auth, http.HandlerFunc(a.handleHistory)))
	if ro := a.opts.Rollouts; ro != nil {
		mux.Handle("GET /debug/rollouts", requireAdmin(a.auth, http.HandlerFunc(a.handleRollouts)))
		mux.Handle("POST /admin/rollout/promote", requireMutation(a.auth, a.handleRolloutAction("promote", ro.Promote)))
		mux.Handle("POST /admin/rollout/abort", requireMutation(a.auth, a.handleRolloutAction("abort", ro.Abort)))
	}
	if !a.opts.NoRollback {
		mux.Handle("POST /admin/rollback", requireMutation(a.auth, http.HandlerFunc(a.handleRollback)))
	}
	return mux
}

// handleIndex is the admin page: how the config was last applied (with the
// errors of a rejected reload, the first thing to look at when a change does
// not show up), the snapshot, the connected clients, and the other endpoints.
func (a *Admin) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	b.WriteString("leanxds\n\n")
	if a.opts.Source != nil {
		sourceLines(&b, a.opts.Source.SourceStatus(), a.snapshotLines)
	} else {
		a.snapshotLines(&b)
	}
	streams := a.opts.Streams.Streams()
	nacked := 0
	for _, c := range streams {
		for _, t := range c.Types {
			if t.LastNACK != nil && t.LastNACK.Nonce == t.NonceSent {
				nacked++
				break
			}
		}
	}
	fmt.Fprintf(&b, "\nclients   %d streams connected, %d rejecting their newest config (NACK)\n", len(streams), nacked)
	fmt.Fprintf(&b, `
endpoints
  /metrics                    Prometheus metrics
  /healthz, /readyz           process up; initial config loaded (and the snapshot's fate)
  /debug/clients[?verbose]    connected streams, per type: versions sent and ACKed, last NACK
  /debug/config?node=ID       what a node is served, as JSON, with versions
  /debug/config?scope=NAME    what a scope holds
`)
	if a.opts.Source != nil {
		fmt.Fprintf(&b, "  /debug/reload               the state above, as JSON\n")
	}
	if a.opts.Fleet != nil {
		fmt.Fprintf(&b, "  /debug/fleet                every node of every replica: which replica serves it, and whether it is current\n")
	}
	fmt.Fprintf(&b, "  /debug/history              the revisions kept of each scope: time, source, what changed (?format=json)\n")
	fmt.Fprintf(&b, "  (/debug/clients and /debug/config answer a page at a time: &offset=N&limit=M; \"next\" is the next page)\n")
	if a.opts.Pprof {
		fmt.Fprintf(&b, "  /debug/pprof/                Go runtime profiles (net/http/pprof)\n")
	}
	if a.opts.Rollouts != nil {
		fmt.Fprintf(&b, "  /debug/rollouts             the running or last staged rollout: stage, nodes, events (?format=json)\n")
	}
	fmt.Fprintf(&b, "\nchanges (%s)\n", a.auth.mutations())
	if a.opts.Reloader != nil {
		fmt.Fprintf(&b, "  POST /reload[?confirm=true] reload the directory now; confirm a held reload (leanxds reload)\n")
	}
	if a.opts.Rollouts != nil {
		fmt.Fprintf(&b, "  POST /admin/rollout/promote the next stage of the rollout now (leanxds rollout promote)\n")
		fmt.Fprintf(&b, "  POST /admin/rollout/abort   roll the rollout back now (leanxds rollout abort)\n")
	}
	if !a.opts.NoRollback {
		fmt.Fprintf(&b, "  POST /admin/rollback?to=REV every scope back to revision REV, for every node (leanxds rollback)\n")
	}
	_, _ = w.Write([]byte(b.String()))
}

// sourceLines writes the index page's part about the source: how its config
// was last applied, then (through snapshot, between the two as ever) the
// snapshot, then the warnings.
func sourceLines(b *strings.Builder, st SourceStatus, snapshot func(*strings.Builder)) {
	fmt.Fprintf(b, "config    %s\n", st.location())
	if st.isEtcd() {
		fmt.Fprintf(b, "etcd      generation %q at etcd revision %d\n", st.Generation, st.EtcdRevision)
	}
	if st.Loaded {
		total := 0
		for _, n := range st.Scopes {
			total += n
		}
		unit := "files"
		if st.isEtcd() {
			unit = "keys"
		}
		fmt.Fprintf(b, "applied   %s (revision %d): %d resources from %d %s\n",
			st.LastApplied.Format(time.RFC3339), st.Revision, total, st.Files, unit)
		scopes := make([]string, 0, len(st.Scopes))
		for sc := range st.Scopes {
			scopes = append(scopes, sc)
		}
		slices.Sort(scopes)
		for _, sc := range scopes {
			fmt.Fprintf(b, "          scope %q: %d resources\n", sc, st.Scopes[sc])
		}
	} else {
		fmt.Fprintf(b, "applied   never\n")
	}
	if len(st.Errors) > 0 && st.isEtcd() {
		fmt.Fprintf(b, "\nREFUSED   %d keys (last at %s); the last good value of each is still served, the other keys are applied:\n",
			len(st.Errors), st.LastRejected.Format(time.RFC3339))
		for _, e := range st.Errors {
			fmt.Fprintf(b, "  %s\n", e)
		}
	} else if len(st.Errors) > 0 {
		fmt.Fprintf(b, "\nLAST RELOAD REJECTED at %s; the last good config is still served:\n",
			st.LastRejected.Format(time.RFC3339))
		for _, e := range st.Errors {
			fmt.Fprintf(b, "  %s\n", e)
		}
	}
	if st.isEtcd() {
		fmt.Fprintf(b, "rejected  %d values since start\n", st.Rejected)
	} else {
		fmt.Fprintf(b, "rejected  %d reloads since start\n", st.Rejected)
	}
	sourceNotes(b, st)
	snapshot(b)
	if len(st.Warnings) > 0 {
		fmt.Fprintf(b, "\nwarnings:\n")
		for _, wn := range st.Warnings {
			fmt.Fprintf(b, "  %s\n", wn)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // a next path's & as itself, not \u0026
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}
