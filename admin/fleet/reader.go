package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/source"
)

// maxReplicas bounds the replicas a Reader lists.
const maxReplicas = 1000

// Reader reads the status every replica publishes under a prefix of etcd: it
// is the admin.Fleet of /debug/fleet.
type Reader struct {
	cli    *clientv3.Client
	prefix string
}

// NewReader returns the reader of the fleet published under prefix of cli.
func NewReader(cli *clientv3.Client, prefix string) *Reader {
	return &Reader{cli: cli, prefix: prefix}
}

// FleetNodes returns the replicas and at most limit nodes after the one whose
// cursor is after, all read at one etcd revision. A node's cursor is
// "<replica id>/<node id>", its key under <prefix>/nodes/.
func (r *Reader) FleetNodes(ctx context.Context, after string, limit int) (admin.FleetList, error) {
	var out admin.FleetList
	reps, err := r.cli.Get(ctx, source.EtcdReplicasPrefix(r.prefix), clientv3.WithPrefix(), clientv3.WithLimit(maxReplicas))
	if err != nil {
		return out, err
	}
	out.Revision = reps.Header.Revision
	for _, kv := range reps.Kvs {
		var rep admin.FleetReplica
		_ = json.Unmarshal(kv.Value, &rep) // an unreadable one still names a replica
		rep.ID = strings.TrimPrefix(string(kv.Key), source.EtcdReplicasPrefix(r.prefix))
		out.Replicas = append(out.Replicas, rep)
	}
	fleet := source.EtcdNodesPrefix(r.prefix)
	end := clientv3.GetPrefixRangeEnd(fleet)
	count, err := r.cli.Get(ctx, fleet, clientv3.WithRange(end), clientv3.WithCountOnly(), clientv3.WithRev(out.Revision))
	if err != nil {
		return out, err
	}
	out.Total = int(count.Count)
	start := fleet
	if after != "" {
		start = fleet + after + "\x00" // the first key after it
	}
	nodes, err := r.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(int64(limit)), clientv3.WithRev(out.Revision))
	if err != nil {
		return out, err
	}
	out.More = nodes.More
	for _, kv := range nodes.Kvs {
		e := admin.FleetEntry{Cursor: strings.TrimPrefix(string(kv.Key), fleet)}
		replica, node, _ := strings.Cut(e.Cursor, "/")
		if err := json.Unmarshal(kv.Value, &e.Node); err != nil {
			e.Err = fmt.Errorf("%s: %w", kv.Key, err)
		}
		// The key says where the node is, whatever the value claims.
		e.Node.Replica, e.Node.Node = replica, node
		out.Nodes = append(out.Nodes, e)
	}
	return out, nil
}
