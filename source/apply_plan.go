package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/resources"
)

// What ApplyEtcd writes, worked out without etcd: the key and value of each
// resource of a directory, the diff against what etcd holds, and the txns that
// write it within etcd's limits (docs/etcd.md, "apply").

const (
	// DefaultMaxTxnOps is the most operations ApplyEtcd puts in one etcd txn:
	// etcd's default --max-txn-ops.
	DefaultMaxTxnOps = 128
	// DefaultMaxTxnBytes is the most bytes ApplyEtcd puts in one etcd txn:
	// etcd's default --max-request-bytes (1.5 MiB).
	DefaultMaxTxnBytes = 1536 * 1024
)

// applyTxnReserve is the room each txn keeps, beyond its puts and deletes,
// for its compares and the bookkeeping keys (applied, current, staging):
// bytes on top of a few keys of the prefix, and operations.
const (
	applyTxnReserveBytes = 8 * 1024
	applyTxnReserveOps   = 3
	// applyOpOverhead is what one operation costs in a txn request beyond its
	// key and value: the protobuf framing of a RequestOp and its PutRequest.
	applyOpOverhead = 16
)

// applyEntry is one resource of the directory as etcd holds it.
type applyEntry struct {
	// key is relative to <prefix>/gen/<gen>/: <scope>/<message full name>/<name>.
	key string
	// value is the resource as a config file holds it, in compact JSON.
	value []byte
	// typeURL, name and body (its deterministic protobuf encoding) are what a
	// value etcd holds is compared with, when its bytes differ.
	typeURL, name string
	body          []byte
}

// applyKey returns the key of a resource relative to its generation.
func applyKey(scope, typeURL, name string) string {
	full := typeURL[strings.LastIndexByte(typeURL, '/')+1:]
	return scope + "/" + full + "/" + name
}

// encodeApplyValue returns a resource as a config file would hold it: an
// object with "@type" and the resource's fields (protojson, proto field names),
// in compact JSON. A resource whose name is not its message's own (an
// LbEndpoint) is wrapped in an envoy.service.discovery.v3.Resource with its
// name, as in a config file.
func encodeApplyValue(r resources.Resource) ([]byte, error) {
	var m proto.Message = r.Message
	if r.Name != resources.NameOf(r.Message) {
		inner, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		m = &discoveryv3.Resource{Name: r.Name, Resource: inner}
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(a)
	if err != nil {
		return nil, err
	}
	// protojson varies its spacing on purpose; compact JSON is the same bytes
	// for the same content, so a value etcd holds is usually compared by its
	// bytes alone.
	var buf bytes.Buffer
	if err := json.Compact(&buf, js); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// applyEntries returns every resource of a directory as etcd would hold it,
// sorted by key. The resources are encoded on every CPU: at 100,000 resources
// protojson is most of apply's own time.
func applyEntries(cfg *configDir) ([]applyEntry, error) {
	type item struct {
		scope string
		r     placed
	}
	items := make([]item, 0, cfg.count(""))
	for scope, rs := range cfg.scopes {
		for _, r := range rs {
			items = append(items, item{scope, r})
		}
	}
	out := make([]applyEntry, len(items))
	errs := make([]error, len(items))
	workers := min(runtime.GOMAXPROCS(0), len(items)/256+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(items); i += workers {
				it := items[i]
				v, err := encodeApplyValue(it.r.Resource)
				if err != nil {
					errs[i] = fmt.Errorf("%s: %s %q: encoding for etcd: %w", it.r.file, it.r.TypeURL, it.r.Name, err)
					continue
				}
				out[i] = applyEntry{
					key: applyKey(it.scope, it.r.TypeURL, it.r.Name), value: v,
					typeURL: it.r.TypeURL, name: it.r.Name, body: it.r.Encoded(),
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b applyEntry) int { return strings.Compare(a.key, b.key) })
	return out, nil
}

// sameContent reports whether held, a value etcd holds at e's key, is e's
// resource: the same bytes, or JSON that decodes to the same resource (written
// by hand, or by another version of leanxds). A value that does not decode is
// not the same: apply overwrites it.
func (e applyEntry) sameContent(held []byte) bool {
	if bytes.Equal(e.value, held) {
		return true
	}
	rs, err := resources.Parse(e.key+".json", held)
	if err != nil || len(rs) != 1 || e.body == nil {
		return false
	}
	r := rs[0]
	return r.TypeURL == e.typeURL && r.Name == e.name && bytes.Equal(r.Encoded(), e.body)
}

// applyDiff is what a directory changes in a generation, by key relative to
// the generation.
type applyDiff struct {
	added, changed, deleted []string
	unchanged               int
}

// empty reports whether the directory is what etcd holds.
func (d applyDiff) empty() bool {
	return len(d.added)+len(d.changed)+len(d.deleted) == 0
}

// summary is the diff in one phrase: "2 added, 1 changed, 0 deleted, 97 unchanged".
func (d applyDiff) summary() string {
	return fmt.Sprintf("%d added, %d changed, %d deleted, %d unchanged",
		len(d.added), len(d.changed), len(d.deleted), d.unchanged)
}

// diffApply compares the directory's entries (sorted by key) with what a
// generation holds (values by relative key). Unchanged keys are compared by
// content, so that applying the same directory again changes nothing.
func diffApply(want []applyEntry, have map[string][]byte) applyDiff {
	var d applyDiff
	seen := make(map[string]bool, len(want))
	for _, e := range want {
		seen[e.key] = true
		held, ok := have[e.key]
		switch {
		case !ok:
			d.added = append(d.added, e.key)
		case e.sameContent(held):
			d.unchanged++
		default:
			d.changed = append(d.changed, e.key)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(have)) {
		if !seen[k] {
			d.deleted = append(d.deleted, k)
		}
	}
	return d
}

// applyOp is one put or delete of a key relative to a generation.
type applyOp struct {
	key   string
	value []byte
	del   bool
}

// size is what the op adds to a txn request, near enough: its key, value and
// framing.
func (o applyOp) size(genPrefix string) int {
	return len(genPrefix) + len(o.key) + len(o.value) + applyOpOverhead
}

// inPlaceOps returns the puts and deletes that make a generation hold the
// directory, from the diff.
func inPlaceOps(want []applyEntry, d applyDiff) []applyOp {
	byKey := make(map[string][]byte, len(d.added)+len(d.changed))
	for _, k := range d.added {
		byKey[k] = nil
	}
	for _, k := range d.changed {
		byKey[k] = nil
	}
	var ops []applyOp
	for _, e := range want {
		if _, ok := byKey[e.key]; ok {
			ops = append(ops, applyOp{key: e.key, value: e.value})
		}
	}
	for _, k := range d.deleted {
		ops = append(ops, applyOp{key: k, del: true})
	}
	return ops
}

// allPuts returns the puts that write the directory whole into an empty
// generation.
func allPuts(want []applyEntry) []applyOp {
	ops := make([]applyOp, len(want))
	for i, e := range want {
		ops[i] = applyOp{key: e.key, value: e.value}
	}
	return ops
}

// txnLimits are the limits of one etcd txn ApplyEtcd stays within.
type txnLimits struct {
	ops, bytes int
}

// fitsOne reports whether ops fit in one txn with its compares and
// bookkeeping.
func (l txnLimits) fitsOne(genPrefix string, ops []applyOp) bool {
	if len(ops)+applyTxnReserveOps > l.ops {
		return false
	}
	n := applyTxnReserveBytes
	for _, o := range ops {
		n += o.size(genPrefix)
	}
	return n <= l.bytes
}

// batches splits ops into txns within the limits, each keeping room for its
// compares and bookkeeping. An op too large for any txn is an error.
func (l txnLimits) batches(genPrefix string, ops []applyOp) ([][]applyOp, error) {
	maxOps := l.ops - applyTxnReserveOps
	maxBytes := l.bytes - applyTxnReserveBytes
	if maxOps < 1 || maxBytes < 1 {
		return nil, fmt.Errorf("a txn of at most %d operations and %d bytes leaves no room for a resource: raise --max-txn-ops or --max-txn-bytes", l.ops, l.bytes)
	}
	var (
		out   [][]applyOp
		start int
		size  int
	)
	for i, o := range ops {
		s := o.size(genPrefix)
		if s > maxBytes {
			return nil, fmt.Errorf("%s: %d bytes, more than a txn of %d bytes can hold (--max-txn-bytes, etcd's --max-request-bytes)", o.key, len(o.value), l.bytes)
		}
		if i-start == maxOps || size+s > maxBytes {
			out = append(out, ops[start:i])
			start, size = i, 0
		}
		size += s
	}
	if start < len(ops) {
		out = append(out, ops[start:])
	}
	return out, nil
}
