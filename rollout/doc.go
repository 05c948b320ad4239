// Package rollout stages a change to a fleet: the nodes of each stage (a
// share of node ids, ids, or node metadata) are served the new content while
// the other nodes of the changed scopes keep the content before it; a stage
// whose nodes all ACK within its window leads to the next, and NACKs from a
// stage's nodes roll the change back for every node.
//
// # Parts
//
// A Manager serves one store. It is the stream.Router of the server of that
// store (stream.Options.Router), which it wakes (Attach) when the view some
// nodes are served changes; Run drives the stages.
//
//	m := rollout.New(st, rollout.Options{})
//	srv := stream.New(st, stream.Options{Router: m})
//	m.Attach(srv)
//	go m.Run(ctx)
//	r, err := m.Stage(ctx, rollout.Plan{Stages: stages, Window: 30 * time.Second}, "deploy 42",
//		func() (store.Result, error) { return st.Commit(changes...) })
//	st, err := r.Wait(ctx) // Promoted, RolledBack, Held or Superseded
//
// # Two revisions at once
//
// Stage pins the store's view before its commit (the base) and runs the
// commit (the target). From then on, View serves a node of a changed scope
// the store's current view when a stage up to the current one selects it,
// and the pinned base otherwise; nodes of other scopes are served current.
// Nothing is copied: both views share every table and entry the change did
// not touch, and a response is encoded once per table whichever nodes it
// goes to. Selecting a node costs no allocation (BenchmarkView).
//
// While Stage's commit runs, the scopes it changes are not known yet: every
// scope is then routed, the first stage's nodes to current, the others to
// the view before the commit. A commit to a scope under rollout that is not
// made through Stage is untested: View serves it to the first stage's nodes
// alone at once, and Run restarts the rollout at its first stage with it as
// the target and the same base.
//
// A change that creates a scope: a node that asks for it and was served the
// default scope keeps being served the default scope until a stage reaches
// it (the server resolves a node's scope against the view it is served);
// then its stream ends with codes.Unavailable, and it reconnects to the new
// scope.
//
// # Deciding
//
// For each stage, Run waits (stream.Server.WaitFor) until every node
// connected now that the stage (with every earlier stage) selects ACKed the
// target, or Plan.MaxNACKs of them NACKed it, or the stage's window ended
// (a node that NACKed has not ACKed: fewer NACKs keep the stage until then).
// A node of the stage seen during it and gone since (it may have crashed on
// the target) is pending: the stage remembers up to 10,000 of its nodes, in
// the state too. A stage none of whose nodes was ever connected during its
// window passes when it ends (a process that has just restarted has no node
// yet). All ACKed: the
// next stage starts; after the last, the rollout is Promoted and every node
// is served current. NACKs: the rollout is RolledBack: every node of its
// scopes is served the base at once, and the base's content is committed
// again (the same bytes, so the same version strings the nodes held), for
// the rollout's scopes only. A window that ends: Plan.OnTimeout (Held by
// default, until Promote or Abort; NACKs of a held stage's nodes still roll
// it back).
//
// Every stage and decision is logged, kept in Status.Events (the newest 64)
// and counted in the Manager's metrics (it is a prometheus.Collector).
//
// # Persistence and replicas
//
// MarshalState and RestoreState carry the state across a restart (a
// persister keeps it beside the store's content and history); a restored
// rollout is at its stage, with its base read from the store's history.
// OnChange is called before a Stage's commit (the state then names the
// commit under way and its base) and after it: a snapshot of the store taken
// between the commit and the second call restores as the commit's rollout at
// its first stage. NACK details kept in events are cut to 1 KiB each, 16 per
// event.
// With Options.Shared, the state lives where every replica reads it (see
// Shared), and a replica's stage nodes are counted with those of the others.
package rollout
