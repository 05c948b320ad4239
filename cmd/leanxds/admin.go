package main

import (
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/leanxds/leanxds/persist"
)

// The admin HTTP server and CSDS are package admin's; serve wires them to the
// config directory and the snapshot through the adapters below.

// adminTokenEnv is the environment variable of serve's --admin-token, which
// dump and reload read too.
var adminTokenEnv = envName("admin-token")

// displayJSON writes resources with the field names of the config files
// (snake_case), as Envoy's config dump does.
var displayJSON = protojson.MarshalOptions{UseProtoNames: true}

// csdsGuard says how CSDS is guarded, for the startup log; debugGuard is how
// the debug pages are (admin.Admin.Guard).
func csdsGuard(tokenSet bool, nodeIdentity, debugGuard string) string {
	switch {
	case nodeIdentity != "" && tokenSet:
		return "admin token, or the caller's own node (--node-identity)"
	case nodeIdentity != "":
		return "the caller's own node (--node-identity), every node for --csds-readers"
	}
	return debugGuard
}

// adminSnapshot shows the snapshot (--snapshot) on the admin server
// (admin.Snapshot).
type adminSnapshot struct {
	*persist.Persister
	interval time.Duration
	// restored is what the restore at start found and did (server.snapshot).
	restored *atomic.Pointer[persist.Info]
}

func (a adminSnapshot) Interval() time.Duration { return a.interval }
func (a adminSnapshot) Restored() *persist.Info { return a.restored.Load() }
