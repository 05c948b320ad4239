package machine

import (
	"hash/maphash"
	"unicode/utf8"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// UnmarshalRequest decodes an encoded SotW request into req, its resource names
// shared through the name table of c (see names.go): what the gRPC codec of a
// server whose streams use c calls for every DiscoveryRequest.
func (c *Caches) UnmarshalRequest(b []byte, req *discoveryv3.DiscoveryRequest) error {
	return unmarshalRequest(b, req, c.names)
}

// unmarshalRequest decodes a SotW request whose resource names are shared
// strings of t, once they are measured against t's limits. A list seen recently
// is reused whole (req.ResourceNames is then shared: it is only read); other
// names come from the table of names. Names over the limits are decoded
// unshared, as proto.Unmarshal would, and left to the server's Limits. The other
// fields are decoded by proto.Unmarshal as usual.
func unmarshalRequest(b []byte, req *discoveryv3.DiscoveryRequest, t *nameTable) error {
	var h maphash.Hash
	h.SetSeed(t.seed)
	var sizes nameSizes
	rest := make([]byte, 0, 256)
	for in := b; len(in) > 0; {
		num, typ, n := protowire.ConsumeTag(in)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, in[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		if num == fieldResourceNames && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(in[n:])
			h.Write(v)
			h.WriteByte(0)
			sizes.add(len(v))
		} else {
			rest = append(rest, in[:n+m]...)
		}
		in = in[n+m:]
	}
	if err := proto.Unmarshal(rest, req); err != nil {
		return err
	}
	if sizes.count == 0 {
		return nil
	}
	if t.limits.checkNames(req.GetTypeUrl(), sizes) != nil {
		names, err := decodeNames(nil, b, sizes.count)
		req.ResourceNames = names
		return err
	}
	key := h.Sum64()
	if names := t.list(key, sizes.count); names != nil && sameNames(b, names) {
		req.ResourceNames = names
		return nil
	}
	names, err := decodeNames(t, b, sizes.count)
	if err != nil {
		return err
	}
	t.keepList(key, names)
	req.ResourceNames = names
	return nil
}

// eachName calls f with every resource name of an encoded request, in order.
func eachName(b []byte, f func(v []byte) bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[n:]) // b was checked already
		if num == fieldResourceNames && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[n:])
			if !f(v) {
				return
			}
		}
		b = b[n+m:]
	}
}

// sameNames reports whether the names of b are exactly names.
func sameNames(b []byte, names []string) bool {
	i, same := 0, true
	eachName(b, func(v []byte) bool {
		same = i < len(names) && names[i] == string(v)
		i++
		return same
	})
	return same && i == len(names)
}

// decodeNames returns the count names of b as shared strings of t, or as
// strings of their own when t is nil.
func decodeNames(t *nameTable, b []byte, count int) ([]string, error) {
	names := make([]string, 0, count)
	var err error
	if t == nil {
		eachName(b, func(v []byte) bool {
			if !utf8.Valid(v) {
				err = errInvalidName
				return false
			}
			names = append(names, string(v))
			return true
		})
		return names, err
	}
	t.mu.RLock() // once per list, not once per name
	var misses []int
	eachName(b, func(v []byte) bool {
		s, ok := t.lookupLocked(v)
		if !ok {
			misses = append(misses, len(names))
		}
		names = append(names, s)
		return true
	})
	t.mu.RUnlock()
	if len(misses) > 0 {
		i, k := 0, 0
		eachName(b, func(v []byte) bool {
			if k < len(misses) && misses[k] == i {
				names[i], err = t.intern(v)
				k++
			}
			i++
			return err == nil
		})
	}
	return names, err
}

// DiscoveryRequest.resource_names.
const fieldResourceNames = 3
