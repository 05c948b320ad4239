// Package etcdsource shows an etcd source (source.Etcd) on the admin server:
// the generation and etcd revision served, the values refused, and whether
// etcd answers, on the index page, /readyz, /debug/reload and the metrics
// (leanxds_config_source_stale is 1 while etcd does not answer).
//
//	src := source.NewEtcd(cli, prefix, st, source.EtcdOptions{})
//	a := admin.New(admin.Options{Store: st, Streams: srv, Source: etcdsource.Of(src)})
//
// There is no Reloader: the source follows etcd's watch, and a write to etcd
// is what changes the config.
package etcdsource

import (
	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/source"
)

// Etcd is an etcd source as the admin server sees it: an admin.Source.
type Etcd struct{ src *source.Etcd }

// Of returns the admin server's view of src.
func Of(src *source.Etcd) Etcd { return Etcd{src} }

// SourceStatus returns how the content of etcd was last applied.
func (e Etcd) SourceStatus() admin.SourceStatus {
	st := e.src.Status()
	return admin.SourceStatus{
		Kind: admin.SourceEtcd, Location: st.Location,
		Generation: st.Generation, EtcdRevision: st.EtcdRevision,
		Loaded: st.Loaded, LastAttempt: st.LastAttempt, LastApplied: st.LastApplied,
		Revision: st.Revision, Files: st.Files, Scopes: st.Scopes, Rejected: st.Rejected,
		Errors: st.Errors, LastRejected: st.LastRejected, Warnings: st.Warnings,
		Stale: st.Stale, StaleSince: st.StaleSince,
	}
}
