package main

import (
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// clientJSON is one connected stream in /debug/clients.
type clientJSON struct {
	ID             uint64     `json:"id"`
	NodeID         string     `json:"node_id"`
	Cluster        string     `json:"cluster"`
	Scope          string     `json:"scope"`
	Variant        string     `json:"variant"`
	Service        string     `json:"service"`
	UserAgent      string     `json:"user_agent,omitempty"`
	ConnectedSince time.Time  `json:"connected_since"`
	Types          []typeJSON `json:"types"`
}

// typeJSON is the state of one type on a stream.
type typeJSON struct {
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
	Retained     []string  `json:"retained,omitempty"`
	VersionSent  string    `json:"version_sent"`
	NonceSent    string    `json:"nonce_sent,omitempty"`
	VersionACKed string    `json:"version_acked"`
	LastNACK     *nackJSON `json:"last_nack,omitempty"`
}

// nackJSON is a client's newest rejection of a type.
type nackJSON struct {
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

func nackOf(t stream.TypeStatus) *nackJSON {
	n := t.LastNACK
	if n == nil {
		return nil
	}
	return &nackJSON{
		RejectedVersion: n.RejectedVersion, HeldVersion: n.Version, Nonce: n.Nonce,
		Code: n.Code, Message: n.Message, At: n.At, Current: n.Nonce == t.NonceSent,
	}
}

// handleClients lists the connected streams; ?verbose adds the subscribed names.
func (s *server) handleClients(w http.ResponseWriter, r *http.Request) {
	_, verbose := r.URL.Query()["verbose"]
	out := []clientJSON{}
	for _, c := range s.xds.Streams() {
		cj := clientJSON{
			ID: c.ID, NodeID: c.NodeID, Cluster: c.Cluster, Scope: c.Scope,
			Variant: c.Variant, Service: c.Service, ConnectedSince: c.ConnectedAt,
			Types: []typeJSON{},
		}
		if n := c.Node; n != nil && n.GetUserAgentName() != "" {
			cj.UserAgent = n.GetUserAgentName() + " " + n.GetUserAgentVersion()
		}
		for _, t := range c.Types {
			tj := typeJSON{
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
		out = append(out, cj)
	}
	writeJSON(w, http.StatusOK, out)
}

// resourceJSON is one resource in /debug/config.
type resourceJSON struct {
	Name string `json:"name"`
	// Version is the resource's content version (a hash of its encoding).
	Version string `json:"version,omitempty"`
	// Status is the resource's status on the stream, as CSDS reports it.
	Status   string          `json:"status,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
}

// typeConfigJSON is what a stream is served of one type.
type typeConfigJSON struct {
	Type         string         `json:"type"`
	TypeURL      string         `json:"type_url"`
	VersionSent  string         `json:"version_sent,omitempty"`
	VersionACKed string         `json:"version_acked,omitempty"`
	LastNACK     *nackJSON      `json:"last_nack,omitempty"`
	Resources    []resourceJSON `json:"resources"`
}

type streamConfigJSON struct {
	ID      uint64           `json:"id"`
	Scope   string           `json:"scope"`
	Variant string           `json:"variant"`
	Service string           `json:"service"`
	Types   []typeConfigJSON `json:"types"`
}

// handleConfig shows the resources a node is served (?node=ID), per stream and
// type, as protojson with their versions: what the client sees, for
// troubleshooting. ?scope=NAME shows a scope's content instead.
func (s *server) handleConfig(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	node, scope := q.Get("node"), q.Get("scope")
	v := s.st.View()
	switch {
	case node != "":
		var streams []streamConfigJSON
		for _, c := range s.xds.Streams() {
			if c.NodeID != node {
				continue
			}
			sc := streamConfigJSON{ID: c.ID, Scope: c.Scope, Variant: c.Variant, Service: c.Service, Types: []typeConfigJSON{}}
			for _, t := range c.Types {
				if !t.Served {
					continue
				}
				tc := typeConfigJSON{
					Type: protocol.Short(t.TypeURL), TypeURL: t.TypeURL,
					VersionSent: t.VersionSent, VersionACKed: t.VersionACKed, LastNACK: nackOf(t),
					Resources: []resourceJSON{},
				}
				for _, sr := range servedResources(v, c.Scope, t) {
					rj, err := resourceOf(sr.name, sr.entry)
					if err != nil {
						writeJSONError(w, http.StatusInternalServerError, "%s %q: %v", protocol.Short(t.TypeURL), sr.name, err)
						return
					}
					rj.Status = sr.client.String()
					tc.Resources = append(tc.Resources, rj)
				}
				sc.Types = append(sc.Types, tc)
			}
			streams = append(streams, sc)
		}
		if streams == nil {
			writeJSONError(w, http.StatusNotFound, "node %q has no stream connected", node)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"node": node, "revision": v.Revision(), "streams": streams})
	case scope != "":
		types := []typeConfigJSON{}
		for typeURL, t := range v.Tables(scope) {
			tc := typeConfigJSON{Type: protocol.Short(typeURL), TypeURL: typeURL, Resources: []resourceJSON{}}
			for _, e := range t.Sorted() {
				rj, err := resourceOf(e.Name, e)
				if err != nil {
					writeJSONError(w, http.StatusInternalServerError, "%s %q: %v", protocol.Short(typeURL), e.Name, err)
					return
				}
				tc.Resources = append(tc.Resources, rj)
			}
			types = append(types, tc)
		}
		writeJSON(w, http.StatusOK, map[string]any{"scope": scope, "revision": v.Revision(), "types": types})
	default:
		writeJSONError(w, http.StatusBadRequest, "name a node (?node=ID) or a scope (?scope=NAME)")
	}
}

// displayJSON writes resources with the field names of the config files
// (snake_case), as Envoy's config dump does.
var displayJSON = protojson.MarshalOptions{UseProtoNames: true}

// resourceOf renders an entry as protojson, secrets redacted; a nil entry is a
// name without a resource.
func resourceOf(name string, e *store.Entry) (resourceJSON, error) {
	rj := resourceJSON{Name: name}
	if e == nil {
		return rj, nil
	}
	m, err := displayMessage(e)
	if err != nil {
		return rj, err
	}
	b, err := displayJSON.Marshal(m)
	if err != nil {
		return rj, err
	}
	rj.Version, rj.Resource = e.Version, b
	return rj, nil
}
