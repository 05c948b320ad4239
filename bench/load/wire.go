package load

import (
	"fmt"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/leanxds/leanxds/protocol"
)

// The generator reads and writes xDS messages with protowire, not generated
// code: it decodes only what an Envoy needs to decide its next request (names,
// version, nonce) and keeps no message, so a client costs a few hundred bytes.

// Type indices, in push order.
const (
	tCDS = iota
	tEDS
	tLDS
	tRDS
	numTypes
)

var typeURLs = [numTypes]string{protocol.TypeCluster, protocol.TypeEndpoint, protocol.TypeListener, protocol.TypeRoute}

// typeIndex returns the index of a type URL, or -1.
func typeIndex(b []byte) int {
	for i, u := range typeURLs {
		if string(b) == u {
			return i
		}
	}
	return -1
}

// outMsg is a request on the wire: head is this request's own bytes, tail bytes
// shared by many requests (an encoded list of resource names), sent as they are.
type outMsg struct {
	head, tail []byte
}

// codec is the client's gRPC codec: it sends outMsg as its two buffers and hands
// a received message to the client that asked for it, which parses it in place.
type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*outMsg); ok {
		if len(m.tail) == 0 {
			return mem.BufferSlice{mem.SliceBuffer(m.head)}, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(m.head), mem.SliceBuffer(m.tail)}, nil
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	c, ok := v.(*client)
	if !ok {
		return encoding.GetCodecV2("proto").Unmarshal(data, v)
	}
	if len(data) == 1 {
		return c.consume(data[0].ReadOnlyData())
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return c.consume(buf.ReadOnlyData())
}

// fields calls f for every field of a message; it stops at the first error.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// anyValue returns the value of a google.protobuf.Any.
func anyValue(b []byte) (typeURL, value []byte) {
	_ = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			typeURL = v
		case num == 2 && typ == protowire.BytesType:
			value = v
		}
		return nil
	})
	return typeURL, value
}

// stringField returns the first bytes field num of a message.
func stringField(b []byte, want protowire.Number) []byte {
	var out []byte
	_ = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == want && typ == protowire.BytesType && out == nil {
			out = v
		}
		return nil
	})
	return out
}

// clusterEDSName returns the EDS service a Cluster reads its endpoints from
// (eds_cluster_config.service_name, or its own name), and nil for a cluster that
// does not use EDS.
func clusterEDSName(b []byte) (name, eds []byte) {
	isEDS := false
	_ = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType: // name
			name = v
		case num == 2 && typ == protowire.VarintType: // type
			isEDS = x == 3 // Cluster.EDS
		case num == 3 && typ == protowire.BytesType: // eds_cluster_config
			isEDS = true
			eds = stringField(v, 2) // service_name
		}
		return nil
	})
	if !isEDS {
		return name, nil
	}
	if len(eds) == 0 {
		eds = name
	}
	return name, eds
}

// HttpConnectionManager's type URL and field numbers, for the route names a
// listener uses.
const hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// listenerRoutes calls f with the name of every RDS route configuration a
// Listener's HTTP connection managers use.
func listenerRoutes(b []byte, f func(route []byte)) (name []byte) {
	hcm := func(a []byte) {
		t, v := anyValue(a)
		if string(t) != hcmType {
			return
		}
		if rds := stringField(v, 3); rds != nil { // rds
			if n := stringField(rds, 2); n != nil { // route_config_name
				f(n)
			}
		}
	}
	chain := func(fc []byte) {
		_ = fields(fc, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			if num == 3 && typ == protowire.BytesType { // filters
				if tc := stringField(v, 4); tc != nil { // typed_config
					hcm(tc)
				}
			}
			return nil
		})
	}
	_ = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			name = v
		case 3, 25: // filter_chains, default_filter_chain
			chain(v)
		case 19: // api_listener
			if a := stringField(v, 1); a != nil {
				hcm(a)
			}
		}
		return nil
	})
	return name
}

// Request encoders. A SotW DiscoveryRequest: version_info 1, node 2,
// resource_names 3, type_url 4, response_nonce 5. A DeltaDiscoveryRequest: node 1,
// type_url 2, resource_names_subscribe 3, resource_names_unsubscribe 4,
// response_nonce 6.

func appendNode(b []byte, field protowire.Number, id string) []byte {
	var node []byte
	node = protowire.AppendTag(node, 1, protowire.BytesType)
	node = protowire.AppendString(node, id)
	node = protowire.AppendTag(node, 2, protowire.BytesType)
	node = protowire.AppendString(node, "bench")
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, node)
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// sotwRequest encodes a SotW request but its resource names, which the caller
// sends as the shared tail.
func sotwRequest(t int, version, nonce, nodeID string) []byte {
	b := make([]byte, 0, 64+len(version)+len(nonce)+len(nodeID))
	b = appendString(b, 1, version)
	if nodeID != "" {
		b = appendNode(b, 2, nodeID)
	}
	b = appendString(b, 4, typeURLs[t])
	return appendString(b, 5, nonce)
}

// deltaRequest encodes a delta request.
func deltaRequest(t int, nonce, nodeID string, subscribe, unsubscribe []string) []byte {
	b := make([]byte, 0, 96)
	if nodeID != "" {
		b = appendNode(b, 1, nodeID)
	}
	b = appendString(b, 2, typeURLs[t])
	for _, n := range subscribe {
		b = appendString(b, 3, n)
	}
	for _, n := range unsubscribe {
		b = appendString(b, 4, n)
	}
	return appendString(b, 6, nonce)
}

// scratch is per-message working memory, pooled: clients hold none between messages.
type scratch struct {
	idx []int32
}

var scratchPool = sync.Pool{New: func() any { return &scratch{idx: make([]int32, 0, 1024)} }}

func errType(b []byte) error { return fmt.Errorf("response of unexpected type %q", b) }
