package admin

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Client is one connected stream in /debug/clients.
type Client struct {
	ID             uint64       `json:"id"`
	NodeID         string       `json:"node_id"`
	Cluster        string       `json:"cluster"`
	Scope          string       `json:"scope"`
	Variant        string       `json:"variant"`
	Service        string       `json:"service"`
	UserAgent      string       `json:"user_agent,omitempty"`
	ConnectedSince time.Time    `json:"connected_since"`
	Types          []ClientType `json:"types"`

	// AwaitingFirstRequest marks a stream that has sent no request yet: it has
	// no node, scope or types (--first-request-timeout ends it).
	AwaitingFirstRequest bool `json:"awaiting_first_request,omitempty"`
}

// ClientType is the state of one type on a stream.
type ClientType struct {
	Type     string `json:"type"`
	TypeURL  string `json:"type_url"`
	Served   bool   `json:"served"`
	Wildcard bool   `json:"wildcard"`
	// Subscribed counts the names asked for explicitly; Names lists them (?verbose).
	Subscribed int      `json:"subscribed"`
	Names      []string `json:"names,omitempty"`
	// Missing counts the names asked for that do not exist (R14).
	Missing      int      `json:"missing"`
	MissingNames []string `json:"missing_names,omitempty"`
	// Retained names resources deleted from the config that the client is still
	// sent while it may hold routes of the revision before (R15, R18).
	Retained     []string `json:"retained,omitempty"`
	VersionSent  string   `json:"version_sent"`
	NonceSent    string   `json:"nonce_sent,omitempty"`
	VersionACKed string   `json:"version_acked"`
	LastNACK     *NACK    `json:"last_nack,omitempty"`
}

// NACK is a client's newest rejection of a type.
type NACK struct {
	RejectedVersion string    `json:"rejected_version"`
	HeldVersion     string    `json:"held_version"`
	Nonce           string    `json:"nonce"`
	Code            int32     `json:"code"`
	Message         string    `json:"message"`
	At              time.Time `json:"at"`
	// Current is true when the rejected response is the newest one sent: the
	// client is still on HeldVersion.
	Current bool `json:"current"`
}

func nackOf(t stream.TypeStatus) *NACK {
	n := t.LastNACK
	if n == nil {
		return nil
	}
	return &NACK{
		RejectedVersion: n.RejectedVersion, HeldVersion: n.Version, Nonce: n.Nonce,
		Code: n.Code, Message: n.Message, At: n.At, Current: n.Nonce == t.NonceSent,
	}
}

// ClientsPage is a page of /debug/clients.
type ClientsPage struct {
	// Total counts the connected streams; Offset and Limit are the window of
	// them this page shows, in order of connection.
	Total   int      `json:"total"`
	Offset  int      `json:"offset"`
	Limit   int      `json:"limit"`
	Clients []Client `json:"clients"`
	// Next is the path of the next page; empty on the last one.
	Next string `json:"next,omitempty"`
}

// handleClients lists the connected streams, a page at a time; ?verbose adds
// the subscribed names.
func (a *Admin) handleClients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, verbose := q["verbose"]
	pr, err := parsePage(q, a.opts.MaxPage)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "%v", err)
		return
	}
	streams := a.opts.Streams.Streams()
	for _, i := range a.opts.Streams.AwaitingFirstRequest() {
		streams = append(streams, stream.StreamStatus{StreamInfo: i})
	}
	slices.SortFunc(streams, func(a, b stream.StreamStatus) int { return cmp.Compare(a.ID, b.ID) })
	page := ClientsPage{Total: len(streams), Offset: pr.offset, Limit: pr.limit, Clients: []Client{}}
	frame := page
	frame.Next = longestNext(r, pr.limit)
	budget, err := newPageBudget(a.opts.MaxBytes, frame)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	for i := pr.offset; i < len(streams); i++ {
		if len(page.Clients) == pr.limit {
			page.Next = pr.nextPath(r, len(page.Clients))
			break
		}
		cj := clientOf(streams[i], verbose)
		ok, err := budget.fits(cj, 2)
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		if !ok {
			if len(page.Clients) == 0 {
				writeTooLarge(w, a.opts.MaxBytes, fmt.Sprintf("stream %d of node %q", cj.ID, cj.NodeID), "leave out ?verbose")
				return
			}
			page.Next = pr.nextPath(r, len(page.Clients))
			break
		}
		page.Clients = append(page.Clients, cj)
	}
	writeJSON(w, http.StatusOK, page)
}

// clientOf is a stream as /debug/clients shows it; verbose adds the names.
func clientOf(c stream.StreamStatus, verbose bool) Client {
	cj := Client{
		ID: c.ID, NodeID: c.NodeID, Cluster: c.Cluster, Scope: c.Scope,
		Variant: c.Variant, Service: c.Service, ConnectedSince: c.ConnectedAt,
		Types: []ClientType{},
		// Every stream that sent a request has a node (R2).
		AwaitingFirstRequest: c.Node == nil,
	}
	if n := c.Node; n != nil && n.GetUserAgentName() != "" {
		cj.UserAgent = n.GetUserAgentName() + " " + n.GetUserAgentVersion()
	}
	for _, t := range c.Types {
		tj := ClientType{
			Type: protocol.Short(t.TypeURL), TypeURL: t.TypeURL, Served: t.Served, Wildcard: t.Wildcard,
			Subscribed: len(t.Names), Missing: len(t.Missing),
			VersionSent: t.VersionSent, NonceSent: t.NonceSent, VersionACKed: t.VersionACKed,
			LastNACK: nackOf(t),
		}
		if verbose {
			tj.Names, tj.MissingNames = t.Names, t.Missing
		}
		for _, e := range t.Retained {
			tj.Retained = append(tj.Retained, e.Name)
		}
		cj.Types = append(cj.Types, tj)
	}
	return cj
}

// Resource is one resource in /debug/config.
type Resource struct {
	Name string `json:"name"`
	// Version is the resource's content version (a hash of its encoding).
	Version string `json:"version,omitempty"`
	// Status is the resource's status on the stream, as CSDS reports it.
	Status   string          `json:"status,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
}

// TypeConfig is what a stream is served of one type, or what a scope holds
// of it.
type TypeConfig struct {
	Type         string `json:"type"`
	TypeURL      string `json:"type_url"`
	VersionSent  string `json:"version_sent,omitempty"`
	VersionACKed string `json:"version_acked,omitempty"`
	LastNACK     *NACK  `json:"last_nack,omitempty"`
	// Total counts the resources of the type; Resources holds those on this
	// page.
	Total     int        `json:"total"`
	Resources []Resource `json:"resources"`
}

// StreamConfig is what one stream of a node is served, per type.
type StreamConfig struct {
	ID      uint64       `json:"id"`
	Scope   string       `json:"scope"`
	Variant string       `json:"variant"`
	Service string       `json:"service"`
	Types   []TypeConfig `json:"types"`
}

// NodeConfigPage is a page of /debug/config?node=ID: every stream and type of
// the node, with the resources of the page.
type NodeConfigPage struct {
	Node     string `json:"node"`
	Revision uint64 `json:"revision"`
	// Total counts the resources of every stream and type; Offset and Limit
	// are the window of them this page shows, in the order they are listed.
	Total   int            `json:"total"`
	Offset  int            `json:"offset"`
	Limit   int            `json:"limit"`
	Streams []StreamConfig `json:"streams"`
	Next    string         `json:"next,omitempty"`
}

// ScopeConfigPage is a page of /debug/config?scope=NAME.
type ScopeConfigPage struct {
	Scope    string       `json:"scope"`
	Revision uint64       `json:"revision"`
	Total    int          `json:"total"`
	Offset   int          `json:"offset"`
	Limit    int          `json:"limit"`
	Types    []TypeConfig `json:"types"`
	Next     string       `json:"next,omitempty"`
}

// pageResource is one resource a config page may show: where it goes on the
// page (stream, type) and what it is.
type pageResource struct {
	stream, typ int
	name        string
	entry       *store.Entry
	status      string
}

// handleConfig shows the resources a node is served (?node=ID), per stream and
// type, as protojson with their versions: what the client sees, for
// troubleshooting. ?scope=NAME shows a scope's content instead. Either is
// answered a page of resources at a time.
func (a *Admin) handleConfig(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	node, scope := q.Get("node"), q.Get("scope")
	pr, err := parsePage(q, a.opts.MaxPage)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "%v", err)
		return
	}
	v := a.opts.Store.View()
	var list []pageResource
	switch {
	case node != "":
		page := NodeConfigPage{Node: node, Revision: v.Revision(), Offset: pr.offset, Limit: pr.limit, Streams: []StreamConfig{}}
		for _, c := range a.opts.Streams.Streams() {
			if c.NodeID != node {
				continue
			}
			sc := StreamConfig{ID: c.ID, Scope: c.Scope, Variant: c.Variant, Service: c.Service, Types: []TypeConfig{}}
			for _, t := range c.Types {
				if !t.Served {
					continue
				}
				served := servedResources(v, c.Scope, t)
				for _, sr := range served {
					list = append(list, pageResource{len(page.Streams), len(sc.Types), sr.name, sr.entry, sr.client.String()})
				}
				sc.Types = append(sc.Types, TypeConfig{
					Type: protocol.Short(t.TypeURL), TypeURL: t.TypeURL,
					VersionSent: t.VersionSent, VersionACKed: t.VersionACKed, LastNACK: nackOf(t),
					Total: len(served), Resources: []Resource{},
				})
			}
			page.Streams = append(page.Streams, sc)
		}
		if len(page.Streams) == 0 {
			writeJSONError(w, http.StatusNotFound, "node %q has no stream connected", node)
			return
		}
		page.Total = len(list)
		a.configPage(w, r, pr, &page, &page.Next, list, 6, func(p pageResource) *[]Resource {
			return &page.Streams[p.stream].Types[p.typ].Resources
		}, fmt.Sprintf("the streams of node %q (%d)", node, len(page.Streams)))
	case scope != "":
		page := ScopeConfigPage{Scope: scope, Revision: v.Revision(), Offset: pr.offset, Limit: pr.limit, Types: []TypeConfig{}}
		for typeURL, t := range v.Tables(scope) {
			for _, e := range t.Sorted() {
				list = append(list, pageResource{typ: len(page.Types), name: e.Name, entry: e})
			}
			page.Types = append(page.Types, TypeConfig{Type: protocol.Short(typeURL), TypeURL: typeURL, Total: t.Len(), Resources: []Resource{}})
		}
		page.Total = len(list)
		a.configPage(w, r, pr, &page, &page.Next, list, 4, func(p pageResource) *[]Resource {
			return &page.Types[p.typ].Resources
		}, fmt.Sprintf("the types of scope %q", scope))
	default:
		writeJSONError(w, http.StatusBadRequest, "name a node (?node=ID) or a scope (?scope=NAME)")
	}
}

// configPage renders the resources of list in the window pr, within the page
// budget, into the slices of page that into returns (at indentation level
// depth), and writes page, its next path set. frame names what the page holds
// besides its resources, for when that alone exceeds the budget.
func (a *Admin) configPage(w http.ResponseWriter, r *http.Request, pr pageRequest, page any, next *string,
	list []pageResource, depth int, into func(pageResource) *[]Resource, frame string) {
	*next = longestNext(r, pr.limit)
	budget, err := newPageBudget(a.opts.MaxBytes, page)
	*next = ""
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if !budget.frameFits() {
		writeTooLarge(w, a.opts.MaxBytes, frame, "raise --admin-max-bytes")
		return
	}
	taken := 0
	for _, p := range list[min(pr.offset, len(list)):] {
		if taken == pr.limit {
			*next = pr.nextPath(r, taken)
			break
		}
		rj, err := resourceOf(p.name, p.entry)
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, "%q: %v", p.name, err)
			return
		}
		rj.Status = p.status
		ok, err := budget.fits(rj, depth)
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, "%q: %v", p.name, err)
			return
		}
		if !ok {
			if taken == 0 {
				writeTooLarge(w, a.opts.MaxBytes, fmt.Sprintf("resource %q", p.name),
					"read it over CSDS (leanxds dump --node ID --output yaml), or raise --admin-max-bytes")
				return
			}
			*next = pr.nextPath(r, taken)
			break
		}
		*into(p) = append(*into(p), rj)
		taken++
	}
	writeJSON(w, http.StatusOK, page)
}

// displayJSON writes resources with the field names of the config files
// (snake_case), as Envoy's config dump does.
func displayJSON() protojson.MarshalOptions { return protojson.MarshalOptions{UseProtoNames: true} }

// resourceOf renders an entry as protojson, secrets redacted; a nil entry is a
// name without a resource.
func resourceOf(name string, e *store.Entry) (Resource, error) {
	rj := Resource{Name: name}
	if e == nil {
		return rj, nil
	}
	m, err := displayMessage(e)
	if err != nil {
		return rj, err
	}
	b, err := displayJSON().Marshal(m)
	if err != nil {
		return rj, err
	}
	rj.Version, rj.Resource = e.Version, b
	return rj, nil
}
