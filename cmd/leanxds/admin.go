package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the admin HTTP port. It binds to loopback by default. It
// is read-only but for POST /reload, which reads the directory the server
// already serves again (and may confirm a held reload). The pages that list
// nodes, and POST /reload, answer callers with the admin token, or, without
// one, local callers only; POST /reload also refuses browsers' cross-origin
// requests, so that a web page cannot make a local browser call it.
func (s *server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, text := s.readiness()
		if !ready {
			http.Error(w, text, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, text)
	})
	// The debug pages list every node and what it is served: see adminauth.go.
	mux.Handle("GET /debug/clients", requireAdmin(s.adminToken, http.HandlerFunc(s.handleClients)))
	mux.Handle("GET /debug/config", requireAdmin(s.adminToken, http.HandlerFunc(s.handleConfig)))
	mux.Handle("GET /debug/reload", requireAdmin(s.adminToken, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.source.Status())
	})))
	mux.Handle("POST /reload", requireAdmin(s.adminToken, http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.handleReload))))
	return mux
}

// handleIndex is the admin page: how the config directory was last applied (with
// the errors of a rejected reload, the first thing to look at when a change does
// not show up), the connected clients, and the other endpoints.
func (s *server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	st := s.source.Status()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, "leanxds\n\nconfig    %s\n", st.Dir)
	if st.Loaded {
		total := 0
		for _, n := range st.Scopes {
			total += n
		}
		fmt.Fprintf(&b, "applied   %s (revision %d): %d resources from %d files\n",
			st.LastApplied.Format(time.RFC3339), st.Revision, total, st.Files)
		scopes := make([]string, 0, len(st.Scopes))
		for sc := range st.Scopes {
			scopes = append(scopes, sc)
		}
		slices.Sort(scopes)
		for _, sc := range scopes {
			fmt.Fprintf(&b, "          scope %q: %d resources\n", sc, st.Scopes[sc])
		}
	} else {
		fmt.Fprintf(&b, "applied   never\n")
	}
	if len(st.Errors) > 0 {
		fmt.Fprintf(&b, "\nLAST RELOAD REJECTED at %s; the last good config is still served:\n",
			st.LastRejected.Format(time.RFC3339))
		for _, e := range st.Errors {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	fmt.Fprintf(&b, "rejected  %d reloads since start\n", st.Rejected)
	sourceNotes(&b, st)
	s.snapshotStatus(&b)
	if len(st.Warnings) > 0 {
		fmt.Fprintf(&b, "\nwarnings:\n")
		for _, wn := range st.Warnings {
			fmt.Fprintf(&b, "  %s\n", wn)
		}
	}
	streams := s.xds.Streams()
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
  /debug/reload               the state above, as JSON
  (/debug/clients and /debug/config answer a page at a time: &offset=N&limit=M; "next" is the next page)
  POST /reload[?confirm=true] reload the directory now; confirm a held reload (leanxds reload)
`)
	_, _ = w.Write([]byte(b.String()))
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
