package main

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// scriptedRollouts is an admin.Rollouts whose answers a test sets.
type scriptedRollouts struct {
	mu     sync.Mutex
	status *rollout.Status
	err    error
	calls  []string
	result store.Result
}

func (f *scriptedRollouts) Status() (rollout.Status, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == nil {
		return rollout.Status{}, false
	}
	return *f.status, true
}

func (f *scriptedRollouts) do(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *scriptedRollouts) Promote(reason string) error { return f.do("promote: " + reason) }
func (f *scriptedRollouts) Abort(reason string) error   { return f.do("abort: " + reason) }
func (f *scriptedRollouts) Rollback(to uint64, source string) (store.Result, error) {
	return f.result, f.do(source)
}

// adminWith serves an admin server of an empty store over ro, with the
// admin token.
func adminWith(t *testing.T, ro admin.Rollouts) string {
	t.Helper()
	st := store.New()
	a := admin.New(admin.Options{Store: st, Streams: stream.New(st, stream.Options{}), Rollouts: ro, Token: testToken})
	web := httptest.NewServer(a)
	t.Cleanup(web.Close)
	return web.URL
}

// `leanxds rollout status` prints the rollout for people (or its JSON with
// --output json); promote and abort call the server with a reason and print
// the status after; with no rollout in progress they fail (exit 1) saying so.
func TestRolloutCommands(t *testing.T) {
	at := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	ro := &scriptedRollouts{}
	url := adminWith(t, ro)

	code, stdout, stderr := runArgs(t, tokenEnv, "rollout", "status", "--admin", url)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "no rollout since the server started\n", stdout)

	ro.mu.Lock()
	ro.status = &rollout.Status{ID: "r1", Phase: rollout.Held,
		Plan:  rollout.Plan{Stages: []rollout.Stage{{Name: "1%"}, {Name: "10%"}, {Name: "100%"}}, Window: 30 * time.Second},
		Stage: 1, Base: 4, Target: 5, Scopes: []string{"edge"}, StartedAt: at, StageStartedAt: at,
		Applied: stream.Applied{Revision: 5, ACKed: 1, Pending: 1, Nodes: []stream.NodeApplied{
			{NodeID: "envoy-1", Scope: "edge", State: stream.NodeACKed, Revision: 5},
			{NodeID: "envoy-2", Scope: "edge", State: stream.NodePending, Revision: 4},
		}},
		Events: []rollout.Event{{At: at, What: "held", Stage: 1, Message: "window ended with 1 node pending"}},
	}
	ro.mu.Unlock()
	code, stdout, stderr = runArgs(t, tokenEnv, "rollout", "status", "--admin", url)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, `rollout r1: held, stage 2 (10%) of 3: 1% → 10% → 100%
  revisions  base 4, target 5; scopes edge
  started    2026-05-04T03:02:01Z; this stage 2026-05-04T03:02:01Z
  nodes      1 ACKed, 0 NACKed, 1 pending of the stage
    envoy-1 (scope edge): acked
    envoy-2 (scope edge): pending
  events
    2026-05-04T03:02:01Z  held (stage 2): window ended with 1 node pending
`, stdout)
	code, stdout, _ = runArgs(t, tokenEnv, "rollout", "status", "--admin", url, "--output", "json")
	assert.Equal(t, 0, code)
	var page map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &page))
	assert.Equal(t, "r1", page["rollout"].(map[string]any)["id"])

	code, stdout, stderr = runArgs(t, tokenEnv, "rollout", "promote", "--admin", url, "--reason", "canary looks fine")
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "rollout r1: held")
	code, _, stderr = runArgs(t, tokenEnv, "rollout", "abort", "--admin", url)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, []string{"promote: canary looks fine", "abort: leanxds rollout abort"}, ro.calls)

	ro.mu.Lock()
	ro.err = rollout.ErrNoRollout
	ro.mu.Unlock()
	code, _, stderr = runArgs(t, tokenEnv, "rollout", "promote", "--admin", url)
	assert.Equal(t, 1, code)
	assert.Equal(t, "leanxds: rollout promote: promote: no rollout in progress\n", stderr)

	code, _, stderr = runArgs(t, nil, "rollout", "abort", "--admin", url)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "401 Unauthorized")

	for _, bad := range [][]string{{"rollout"}, {"rollout", "go"}, {"rollout", "status", "extra"}, {"rollout", "status", "--output", "yaml"}} {
		code, _, stderr = runArgs(t, nil, bad...)
		assert.Equal(t, 2, code, "%v: %s", bad, stderr)
	}
}

// `leanxds rollback --yes` posts the rollback and prints what it committed;
// a refused rollback fails with the server's reason.
func TestRollbackCommandPosts(t *testing.T) {
	ro := &scriptedRollouts{result: store.Result{Revision: 9, Set: 2, Deleted: 1}}
	url := adminWith(t, ro)
	code, stdout, stderr := runArgs(t, tokenEnv, "rollback", "--admin", url, "--to", "3", "--yes")
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "rolled back to revision 3: revision 9, 2 resources set, 1 deleted\n", stdout)
	code, stdout, stderr = runArgs(t, tokenEnv, "rollback", "--admin", url, "--yes")
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "rolled back to the revision before the newest: revision 9, 2 resources set, 1 deleted\n", stdout)
	assert.Equal(t, []string{"rollback to 3 (admin)", "rollback (admin)"}, ro.calls)

	ro.mu.Lock()
	ro.err = errors.New(`scope "edge": history reaches back to revision 6 only`)
	ro.mu.Unlock()
	code, _, stderr = runArgs(t, tokenEnv, "rollback", "--admin", url, "--to", "2", "--yes")
	assert.Equal(t, 1, code)
	assert.Equal(t, "leanxds: rollback: 422 Unprocessable Entity: rollback: scope \"edge\": history reaches back to revision 6 only\n", stderr)
}
