package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// fakeRollouts is a Rollouts whose status a test sets, recording the calls
// made to it; it is a prometheus.Collector of one gauge.
type fakeRollouts struct {
	mu     sync.Mutex
	status *rollout.Status
	calls  []string
	err    error
	result store.Result
}

func (f *fakeRollouts) Status() (rollout.Status, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == nil {
		return rollout.Status{}, false
	}
	return *f.status, true
}

func (f *fakeRollouts) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeRollouts) Promote(reason string) error { return f.record("promote: " + reason) }
func (f *fakeRollouts) Abort(reason string) error   { return f.record("abort: " + reason) }
func (f *fakeRollouts) Rollback(to uint64, source string) (store.Result, error) {
	err := f.record(source)
	return f.result, err
}

var fakeRolloutDesc = prometheus.NewDesc("leanxds_rollout_test", "a test gauge", nil, nil)

func (f *fakeRollouts) Describe(ch chan<- *prometheus.Desc) { ch <- fakeRolloutDesc }
func (f *fakeRollouts) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(fakeRolloutDesc, prometheus.GaugeValue, 7)
}

func (f *fakeRollouts) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func sampleRollout() *rollout.Status {
	at := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	stages := []rollout.Stage{{Name: "1%"}, {Name: "10%"}, {Name: "100%"}}
	return &rollout.Status{
		ID: "r7", Phase: rollout.Running, Plan: rollout.Plan{Stages: stages, Window: 30 * time.Second, MaxNACKs: 1},
		Stage: 1, Base: 4, Target: 5, Scopes: []string{"edge"}, StartedAt: at, StageStartedAt: at,
		Applied: stream.Applied{Revision: 5, ACKed: 1, NACKed: 1, Nodes: []stream.NodeApplied{
			{NodeID: "envoy-1", Scope: "edge", State: stream.NodeACKed, Revision: 5},
			{NodeID: "envoy-<2>", Scope: "edge", State: stream.NodeNACKed, Revision: 4,
				Rejection: &stream.Rejection{TypeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster", Version: "v5", Detail: "bad lb_policy"}},
		}},
		Events: []rollout.Event{{At: at, What: "stage", Stage: 0, Message: "stage 1% started"}},
	}
}

// /debug/rollouts shows the rollout as JSON with ?format=json and as HTML
// otherwise (escaping what nodes sent), or says there is none; it is guarded
// like the other /debug/ pages. The manager's metrics are served.
func TestRolloutsPage(t *testing.T) {
	ro := &fakeRollouts{}
	ts := startTestServer(t, func(o *Options) { o.Rollouts = ro; o.Token = testToken })
	fetch := func(path string) (int, string) {
		resp := getAuthBody(t, ts.admin.URL, path, "Bearer "+testToken)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := fetch("/debug/rollouts?format=json")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"rollout": null}`, body)
	_, body = fetch("/debug/rollouts")
	assert.Contains(t, body, "No rollout since start.")

	ro.mu.Lock()
	ro.status = sampleRollout()
	ro.mu.Unlock()
	_, body = fetch("/debug/rollouts?format=json")
	var page rolloutJSON
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.NotNil(t, page.Rollout)
	assert.Equal(t, "r7", page.Rollout.ID)
	assert.Equal(t, 1, page.Rollout.Applied.NACKed)
	assert.Equal(t, "nacked", page.Rollout.Applied.Nodes[1].State)

	code, body = fetch("/debug/rollouts")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "<b>running</b>")
	assert.Contains(t, body, "2 (10%) of 3: 1% → 10% → 100%")
	assert.Contains(t, body, "base 4, target 5")
	assert.Contains(t, body, "envoy-&lt;2&gt;")
	assert.Contains(t, body, "bad lb_policy")
	assert.Contains(t, body, "stage 1% started")

	assert.Equal(t, http.StatusUnauthorized, getAuth(t, ts.admin.URL, "/debug/rollouts", "").StatusCode)
	assert.Equal(t, 7.0, metric(t, ts.admin.URL, "leanxds_rollout_test"))
	_, index := get(t, ts.admin.URL, "/")
	assert.Contains(t, index, "/debug/rollouts")
	assert.Contains(t, index, "POST /admin/rollout/promote")
}

// POST /admin/rollout/promote and /abort call the manager with the reason
// given (or one saying where the call came from) and answer the rollout's
// status; with no rollout in progress they answer 409. They need the admin
// credentials like POST /reload.
func TestRolloutActions(t *testing.T) {
	ro := &fakeRollouts{status: sampleRollout()}
	ts := startTestServer(t, func(o *Options) { o.Rollouts = ro; o.Token = testToken })
	resp := postAuth(t, ts.admin.URL, "/admin/rollout/promote?reason=looks+good", "Bearer "+testToken)
	var page rolloutJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "r7", page.Rollout.ID)
	resp = postAuth(t, ts.admin.URL, "/admin/rollout/abort", "Bearer "+testToken)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{"promote: looks good", "abort: abort through the admin server"}, ro.recorded())

	ro.mu.Lock()
	ro.err = rollout.ErrNoRollout
	ro.mu.Unlock()
	resp = postAuth(t, ts.admin.URL, "/admin/rollout/promote", "Bearer "+testToken)
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Equal(t, "promote: no rollout in progress", errorOf(t, resp))

	for _, path := range []string{"/admin/rollout/promote", "/admin/rollout/abort", "/admin/rollback?to=3"} {
		resp = postAuth(t, ts.admin.URL, path, "")
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, path)
	}
	assert.Len(t, ro.recorded(), 3)
}

// Without credentials configured, the rollout and rollback endpoints are off.
func TestRolloutActionsOffWithoutCredentials(t *testing.T) {
	ro := &fakeRollouts{status: sampleRollout()}
	ts := startTestServer(t, func(o *Options) { o.Rollouts = ro })
	for _, path := range []string{"/admin/rollout/promote", "/admin/rollout/abort", "/admin/rollback"} {
		resp := postAuth(t, ts.admin.URL, path, "")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, path)
		assert.Equal(t, mutationsOff, errorOf(t, resp), path)
	}
	assert.Empty(t, ro.recorded())
	code, _ := get(t, ts.admin.URL, "/debug/rollouts?format=json")
	assert.Equal(t, http.StatusOK, code, "the page is read-only: local callers read it")
}

// POST /admin/rollback?to=REV rolls back through the manager, labelled; a bad
// ?to is 400, a failed rollback 422 with the reason.
func TestRollbackEndpoint(t *testing.T) {
	ro := &fakeRollouts{result: store.Result{Revision: 9, Set: 2, Deleted: 1}}
	ts := startTestServer(t, func(o *Options) { o.Rollouts = ro; o.Token = testToken })
	resp := postAuth(t, ts.admin.URL, "/admin/rollback?to=3", "Bearer "+testToken)
	var r RollbackResult
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	resp.Body.Close()
	assert.Equal(t, RollbackResult{To: 3, Revision: 9, Changed: true, Set: 2, Deleted: 1}, r)
	resp = postAuth(t, ts.admin.URL, "/admin/rollback", "Bearer "+testToken)
	resp.Body.Close()
	assert.Equal(t, []string{"rollback to 3 (admin)", "rollback (admin)"}, ro.recorded())

	for _, bad := range []string{"x", "0", "-1"} {
		resp = postAuth(t, ts.admin.URL, "/admin/rollback?to="+bad, "Bearer "+testToken)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
	}
	ro.mu.Lock()
	ro.err = errors.New(`scope "edge": history reaches back to revision 6 only`)
	ro.mu.Unlock()
	resp = postAuth(t, ts.admin.URL, "/admin/rollback?to=2", "Bearer "+testToken)
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	assert.Equal(t, `rollback: scope "edge": history reaches back to revision 6 only`, errorOf(t, resp))
}

// rolloutJSON is what a client reads of RolloutPage's JSON.
type rolloutJSON struct {
	Rollout *struct {
		ID      string
		Applied struct {
			NACKed int
			Nodes  []struct{ State string }
		}
	}
}

// getAuthBody fetches an admin path with an Authorization header, leaving the
// body to the caller.
func getAuthBody(t *testing.T, base, path, authorization string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}
