package conformance

// Rule is one protocol rule leanxds implements on the server side of xDS.
type Rule struct {
	// ID is the rule's number in RULES.md: R for both variants, S for
	// state of the world, D for delta, X for xdstp names, P for what real
	// clients taught.
	ID string
	// Text says what the server does, in this project's words.
	Text string
	// Source is where the rule comes from: the section of Envoy's "xDS REST and
	// gRPC protocol" page, the cncf/xds TP1 proposal, or observed practice.
	Source string
	// NotImplemented, when set, says why leanxds does not implement the rule
	// yet. Such a rule needs no scenario; every other rule needs at least one.
	NotImplemented string
}

// Groups of rules, in the order RULES.md lists them.
var Groups = []struct {
	Prefix, Title string
}{
	{"R", "Both variants"},
	{"S", "State of the world (SotW)"},
	{"D", "Delta (incremental)"},
	{"X", "xdstp names (cncf/xds TP1)"},
	{"P", "From practice: what real clients do"},
}

// Rules are the rules RULES.md lists, in its order. The conformance tests
// fail when one of them has no scenario and is not marked NotImplemented.
var Rules = []Rule{
	{ID: "R1", Source: "Basic protocol overview",
		Text: "Every response carries a nonce that no other response of the same stream carries. A nonce means nothing on another stream or after a restart."},
	{ID: "R2", Source: "Basic protocol overview",
		Text: "Only the first request of a stream must carry the Node; later ones may leave it out. A first request without a Node ends the stream with InvalidArgument."},
	{ID: "R3", Source: "ACK/NACK and resource type instance version; Aggregated Discovery Service",
		Text: "Each type URL is its own sequence of requests and responses with its own version, even when several types share one ADS stream."},
	{ID: "R4", Source: "ACK/NACK semantics",
		Text: "A request with error_detail is a NACK; a request that echoes a response's nonce without it is an ACK of that response. Versions alone never make a NACK."},
	{ID: "R5", Source: "ACK/NACK semantics",
		Text: "The version_info of a NACK is the last version the client accepted; the server records it as what the client still holds."},
	{ID: "R6", Source: "When to send an update",
		Text: "The server sends only when what the client should hold changed. A NACK never makes it send the same content again: the next response of that type is the next change."},
	{ID: "R7", Source: "Resource updates",
		Text: "A SotW request whose nonce is older than the newest response of its type is stale and gets no response."},
	{ID: "R8", Source: "How the client specifies what resources to return",
		Text: "Requested resources that exist are sent, and only those: a client ignores what it did not ask for, so the server never sends it (nor another scope's resources)."},
	{ID: "R9", Source: "How the client specifies what resources to return",
		Text: "When a subscription grows, the newly named resources are sent, even if the client held them before."},
	{ID: "R10", Source: "How the client specifies what resources to return",
		Text: "\"*\" subscribes to every resource of the type and may sit beside explicit names."},
	{ID: "R11", Source: "How the client specifies what resources to return",
		Text: "Legacy wildcard: a type whose first request names nothing is a wildcard subscription; once the client has named anything, an empty list unsubscribes from everything."},
	{ID: "R12", Source: "Client behavior",
		Text: "LDS and CDS may be subscribed by explicit name, as gRPC does; the server never assumes a wildcard for them."},
	{ID: "R13", Source: "Duplicate resource names",
		Text: "A resource name appears at most once in a response."},
	{ID: "R14", Source: "Knowing when a requested resource does not exist",
		Text: "A requested resource that does not exist yet is remembered and sent when it appears."},
	{ID: "R15", Source: "Eventual consistency considerations",
		Text: "Make before break: one change is pushed CDS, EDS, LDS, RDS (SDS before what uses it), and a cluster that is no longer wanted is removed only after the listeners and routes that used it were updated."},
	{ID: "R16", Source: "Resource warming",
		Text: "The RDS of every new or updated Listener and the EDS of every new or updated Cluster are answered, even when their content did not change, so that nothing stays warming."},
	{ID: "R18", Source: "Eventual consistency considerations",
		Text: "Make before break covers a transition, not a config: a deleted cluster (and its endpoints) is kept only until the client has answered the listeners and routes of the revision that deleted it; then it is removed, whatever those routes name. A config that deletes a cluster its routes still name is a dangling reference: clients that had the cluster lose it at once, as new clients never get it."},
	{ID: "R19", Source: "Resource warming; Eventual consistency considerations",
		Text: "Whatever make before break holds back ends on something the server sees: at the latest when the client answers (ACK or NACK) the response that could make it ask for more. A route to a new cluster waits until the client subscribes the cluster's endpoints or answers the clusters: Envoy subscribes a new cluster's endpoints before it ACKs the clusters (it pauses EDS while applying CDS), so a cluster whose endpoints are not asked for by then gets them elsewhere."},
	{ID: "R17", Source: "TTL",
		Text:           "TTL: for clients that advertise xds.config.supports-resource-ttl (and, in SotW, xds.config.supports-resource-in-sotw), resources carry a TTL and heartbeats repeat the version without the body.",
		NotImplemented: "leanxds sets no TTL on resources and sends no heartbeats; clients keep resources until they are removed."},

	{ID: "R20", Source: "leanxds: who runs what",
		Text: "The server knows which nodes run a store revision: a node is ACKed for revision R once each of its streams has read a view at or past R (with a Router, the view that node is served) and its client ACKed every response the stream sent it. A node whose subscriptions R did not change is ACKed for R without a new response, as versions are digests of content; waiting for R makes the streams that have not read it read the store. Until then the node is pending."},
	{ID: "R21", Source: "leanxds: who runs what",
		Text: "A NACK is held against the store revision of the response it rejects: a node is NACKed for R, with the client's error detail, the type and the version rejected, while the newest answer of some type is a NACK of a response made from a view at or past R. A node that rejected an earlier response and was sent a newer one since is pending until it answers it, not NACKed; its next ACK ends the NACK."},
	{ID: "R22", Source: "leanxds: who runs what",
		Text: "A node is judged by its newest stream of each service (ADS, or a per-type service): after a reconnect the old stream no longer counts, even while still open. A node with several services runs R when every one of those streams does, and is NACKed when any is. A node with no open stream is not listed."},

	{ID: "R23", Source: "leanxds: staged changes",
		Text: "A staged change is served only to the nodes of the stages reached so far: every other node of its scopes is served the content before it (the base), and is sent nothing when the change is committed, as what it holds did not change (R6). Versions are digests of content: each node is sent the version strings of the content it is served."},
	{ID: "R24", Source: "leanxds: staged changes",
		Text: "A rollback (a NACK from a node of the stage, an abort, a rollback to a revision) serves every node the base content again at exactly the version strings it had: the nodes that ran the change are sent the base's resources under the versions they held before it (SotW version_info, delta resource versions), and the nodes that never left the base are sent nothing."},
	{ID: "R25", Source: "leanxds: staged changes",
		Text: "During a rollout a node is served the content of its stage, whatever its stream: a node that reconnects is served the change if a stage reached so far selects it, the base otherwise; a server restarted mid-rollout (its state restored from MarshalState) serves every node the same content as before the restart and goes on from the same stage, with the same base and target."},
	{ID: "R26", Source: "leanxds: who runs what",
		Text: "A rejection is not forgotten because something else changed: when the server reads a newer view and sends the node nothing new of a type whose newest answer is a NACK of its newest response (the content is the version rejected, R6), the node is NACKed for that view's revision too, and the rejection reported names that revision. A change of another type or scope, or a staged change restarted by one, still sees the NACK of content it did not change."},

	{ID: "S1", Source: "Grouping resources into responses; Deleting resources",
		Text: "An LDS or CDS response holds every subscribed resource of its type, every time: a resource left out is deleted by the client, and an empty response deletes them all."},
	{ID: "S2", Source: "Grouping resources into responses; Deleting resources",
		Text: "An RDS or EDS response may hold only the resources that changed; leaving one out deletes nothing."},
	{ID: "S3", Source: "ACK/NACK and resource type instance version",
		Text: "A reconnecting client may send the version it holds in its first request; when that is what the server would send and no name is new, nothing is resent (on a new stream, only for a full-state wildcard subscription: S6). Versions are digests of content, so this holds across a server restart too."},
	{ID: "S4", Source: "Unsubscribing from resources",
		Text: "Unsubscribing is a request that no longer names the resource; it needs no answer and stops its updates. A wildcard is dropped only as a whole."},
	{ID: "S5", Source: "When to send an update",
		Text: "A newer request of a type supersedes the older ones: only the latest is answered."},
	{ID: "S6", Source: "ACK/NACK and resource type instance version; Resource warming",
		Text: "On a new stream, the version of a first request proves what the client holds only for a full-state type (LDS, CDS) subscribed as a whole: the client then holds exactly the last response it accepted. A subscription that names resources is answered in full, even at its current version: the client may have dropped a name since (unsubscribed, or ignored a response that crossed the unsubscription), and may be owed answers (R16) the old stream never sent."},

	{ID: "D1", Source: "Incremental xDS",
		Text: "Every delta response has a nonce; an ACK or NACK is the echoed nonce without or with error_detail. system_version_info is informational only."},
	{ID: "D2", Source: "Incremental xDS",
		Text: "Subscriptions and unsubscriptions are honoured whatever nonce the request carries, even a stale one."},
	{ID: "D3", Source: "Incremental xDS",
		Text: "initial_resource_versions says what a reconnecting client holds, at which version: the server sends only what differs and names in removed_resources what no longer exists."},
	{ID: "D4", Source: "Incremental xDS",
		Text: "A wildcard is \"*\" in resource_names_subscribe, or a first request of a type with both lists empty (legacy)."},
	{ID: "D5", Source: "Subscribing to resources",
		Text: "A name in resource_names_subscribe is always answered, even when the client seems current."},
	{ID: "D6", Source: "Unsubscribing from resources",
		Text: "Unsubscribing a name the client does not hold needs no answer; unsubscribing an explicit name while also subscribed to the wildcard sends the resource again, since the wildcard still covers it."},
	{ID: "D7", Source: "Knowing when a requested resource does not exist; Deleting resources",
		Text: "A subscribed name that does not exist is announced in removed_resources, and a deletion is announced there and only there."},
	{ID: "D8", Source: "Incremental xDS",
		Text: "Per-resource versions are hashes of content, the same in every process and after every restart."},
	{ID: "D9", Source: "Incremental xDS; Resource warming",
		Text: "A resuming delta client is sent again, at the same version, every endpoint assignment (route configuration) it names in initial_resource_versions that a cluster (listener) uses: it may have applied that cluster just before its old stream broke and wait, warming, for the answer R16 owes it, and a content version cannot tell a copy received after the cluster from one held before. Clusters, listeners and unused names are compared by version (D3)."},

	{ID: "X1", Source: "cncf/xds TP1: URI-based resource names",
		Text: "xdstp://authority/type/id?params names are equal whatever the order of their context parameters: the server normalises them before looking them up."},
	{ID: "X2", Source: "cncf/xds TP1: glob collections",
		Text: "A glob collection subscription xdstp://authority/type/prefix/* is answered with every resource directly under that prefix whose context parameters match, each as an individual resource."},
	{ID: "X3", Source: "cncf/xds TP1; gRFC A47",
		Text: "xdstp names work in both variants, SotW (as gRPC sends them) and delta."},
	{ID: "X4", Source: "cncf/xds TP1; Incremental xDS",
		Text: "A delta response names each resource, in resources and removed_resources, with the spelling the client subscribed with: xdstp names are normalised for lookup only, their context parameters neither reordered nor escaped in what the client sees."},

	{ID: "P1", Source: "practice",
		Text: "Only the presence of error_detail makes a NACK: its code differs from client to client (3, 14, even 0)."},
	{ID: "P2", Source: "practice",
		Text: "A cluster without endpoints gets an explicit empty ClusterLoadAssignment, not silence, so the client does not wait for it."},
	{ID: "P3", Source: "practice",
		Text: "A client that presents a version this server never sent (it reconnected after a restart, or came from another server) is treated as holding unknown content: the server compares by content and resends what differs."},
	{ID: "P4", Source: "practice",
		Text: "grpc-go subscribes LDS, then RDS, then CDS, then EDS, one level at a time and by explicit name, and sends the Node only once per stream. It reads its bootstrap from the environment when the process starts, or from the config given to xds.NewXDSResolverWithConfigForTesting."},
	{ID: "P5", Source: "practice",
		Text: "grpc-go, on a new stream, resubscribes every type at once (in the order of a Go map), each request carrying the last version it accepted and no nonce; it does not wait for LDS before asking for RDS, CDS and EDS again. The server answers each type on its own (R3); as grpc-go names every resource it asks for, each type is answered again, at the version it holds when nothing changed (S6)."},
	{ID: "P6", Source: "practice",
		Text: "grpc-go (v1.85) may fail the first RPCs with UNAVAILABLE \"unknown cluster selected for RPC\" at the moment its route starts using a cluster the channel did not use before: it installs the new route before its balancer knows the new cluster. No server order prevents it, since the route must name a cluster before grpc-go asks for it; applications retry UNAVAILABLE, and so does the suite, for at most 200ms, counting it."},
	{ID: "P7", Source: "practice",
		Text: "A request the server cannot serve (no type_url, more resource names or name bytes than the limits, more type URLs on one stream than the limit, a type the per-type service does not serve) ends only its own stream, with InvalidArgument and a message that says what was wrong; every other stream goes on."},
	{ID: "P8", Source: "practice",
		Text: "A type URL the server does not serve is answered, not ignored: over SotW with an empty set of resources, over delta with the names asked for in removed_resources, so the client does not wait for it; the stream goes on."},
	{ID: "P9", Source: "practice",
		Text: "Each per-type service (LDS, RDS, CDS, EDS, SDS, RTDS, ECDS, and the incremental VHDS and LEDS) serves its one type by the same rules as ADS; a request on it may leave type_url empty."},
}

// RuleByID returns the rule with the given id, and whether there is one.
func RuleByID(id string) (Rule, bool) {
	for _, r := range Rules {
		if r.ID == id {
			return r, true
		}
	}
	return Rule{}, false
}
