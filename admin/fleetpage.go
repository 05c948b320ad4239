package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
)

// FleetPage is a page of /debug/fleet: the replicas of the fleet and a window
// of its nodes, each marked current or not against what this replica would
// send it now.
type FleetPage struct {
	// Revision is the etcd revision the fleet was read at; StoreRevision the
	// revision of this replica's store that "current" is judged against.
	Revision      int64          `json:"revision"`
	StoreRevision uint64         `json:"store_revision"`
	Replicas      []FleetReplica `json:"replicas"`
	// Total counts the nodes of the fleet (a node connected to two replicas
	// counts twice); Limit is the most this page lists.
	Total int             `json:"total"`
	Limit int             `json:"limit"`
	Nodes []FleetPageNode `json:"nodes"`
	// Next is the path of the next page; empty on the last one.
	Next string `json:"next,omitempty"`
}

// FleetPageNode is one node of the fleet on one replica.
type FleetPageNode struct {
	Node        string    `json:"node"`
	Replica     string    `json:"replica"`
	Scope       string    `json:"scope"`
	ConnectedAt time.Time `json:"connected_at,omitzero"`
	// Current is true when the node ACKed, for every type it requested, what
	// this replica would send it now: during a rollout, the target to a node
	// its stage selects (one whose replica published a Rollout standing, or
	// that the stage selects by id or share) and the base to the others.
	Current bool                     `json:"current"`
	Types   map[string]FleetPageType `json:"types,omitempty"`
	// Rollout is the node's standing against the stage of the rollout
	// running, as its replica published it; nil when no stage selects it.
	Rollout *FleetRollout `json:"rollout,omitempty"`
	// Error says why the published status could not be read.
	Error string `json:"error,omitempty"`
}

// FleetPageType is a type of a node, with whether the node holds what this
// replica would send it now.
type FleetPageType struct {
	FleetType
	Current bool `json:"current"`
}

// fleetReadTimeout bounds the read of the fleet status of one page.
const fleetReadTimeout = 10 * time.Second

// handleFleet lists the nodes of the whole fleet, a page at a time (?after=
// the previous page's last node, &limit=N), as the replicas published them.
func (a *Admin) handleFleet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pr, err := parsePage(q, a.opts.MaxPage)
	if err != nil || pr.offset != 0 {
		if err == nil {
			err = fmt.Errorf("?offset: /debug/fleet pages with ?after=, as its \"next\" path says")
		}
		writeJSONError(w, http.StatusBadRequest, "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), fleetReadTimeout)
	defer cancel()
	list, err := a.opts.Fleet.FleetNodes(ctx, q.Get("after"), pr.limit)
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, "fleet status: %v", err)
		return
	}
	v := a.opts.Store.View()
	page := FleetPage{Revision: list.Revision, StoreRevision: v.Revision(), Replicas: list.Replicas,
		Total: list.Total, Limit: pr.limit, Nodes: []FleetPageNode{}}
	if page.Replicas == nil {
		page.Replicas = []FleetReplica{}
	}
	longest := ""
	for _, e := range list.Nodes {
		if len(e.Cursor) > len(longest) {
			longest = e.Cursor
		}
	}
	frame := page
	frame.Next = fleetNext(r, longest, pr.limit)
	budget, err := newPageBudget(a.opts.MaxBytes, frame)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if !budget.frameFits() {
		writeTooLarge(w, a.opts.MaxBytes, fmt.Sprintf("the list of %d replicas", len(page.Replicas)), "raise --admin-max-bytes")
		return
	}
	router, _ := a.opts.Rollouts.(RolloutRouter)
	running := ""
	if router != nil {
		if st, ok := a.opts.Rollouts.Status(); ok && (st.Phase == rollout.Running || st.Phase == rollout.Held) {
			running = st.ID
		}
	}
	for i, e := range list.Nodes {
		pn := fleetPageNode(v, router, running, e)
		ok, err := budget.fits(pn, 2)
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		if !ok {
			if i == 0 {
				writeTooLarge(w, a.opts.MaxBytes, fmt.Sprintf("node %q of replica %q", pn.Node, pn.Replica), "raise --admin-max-bytes")
				return
			}
			page.Next = fleetNext(r, list.Nodes[i-1].Cursor, pr.limit)
			break
		}
		page.Nodes = append(page.Nodes, pn)
	}
	if page.Next == "" && list.More && len(list.Nodes) > 0 {
		page.Next = fleetNext(r, list.Nodes[len(list.Nodes)-1].Cursor, pr.limit)
	}
	writeJSON(w, http.StatusOK, page)
}

// fleetPageNode is an entry of the fleet as the page shows it, judged against
// view v, or, with a router, against the view the router serves the node:
// a node with a standing against the rollout running (id running) is one of
// its stage's (its replica, which knows its metadata, said so), served v;
// the router is asked of the others by node id, and of a node whose
// standing is of another rollout (a record not yet written again).
func fleetPageNode(v store.View, router RolloutRouter, running string, e FleetEntry) FleetPageNode {
	n := e.Node
	pn := FleetPageNode{Node: n.Node, Replica: n.Replica, Scope: n.Scope, ConnectedAt: n.ConnectedAt, Rollout: n.Rollout}
	if e.Err != nil {
		pn.Error = e.Err.Error()
		return pn
	}
	if router != nil && (n.Rollout == nil || n.Rollout.ID != running) {
		v = router.Peek(n.Scope, &corev3.Node{Id: n.Node}, v)
	}
	cur, all := currentTypes(v, &n)
	pn.Current = all
	pn.Types = make(map[string]FleetPageType, len(n.Types))
	for short, t := range n.Types {
		pn.Types[short] = FleetPageType{FleetType: t, Current: cur[short]}
	}
	return pn
}

// fleetNext is the path of the page of limit nodes after cursor.
func fleetNext(r *http.Request, cursor string, limit int) string {
	q := url.Values{}
	q.Set("after", cursor)
	q.Set("limit", strconv.Itoa(limit))
	return r.URL.Path + "?" + q.Encode()
}
