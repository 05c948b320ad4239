package etcdrollout

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/stream"
)

// MaxEvents bounds State.Events: the oldest go first.
const MaxEvents = 64

// State is the value of P/rollout/state, in JSON: a rollout of generation
// Target over generation Base.
type State struct {
	// ID names the rollout: its target generation and a random suffix.
	ID string `json:"id"`
	// Base and Target are generations under P/gen/: the content the nodes
	// outside the stage are served, and the change.
	Base   int64         `json:"base"`
	Target int64         `json:"target"`
	Plan   rollout.Plan  `json:"plan"`
	Stage  int           `json:"stage"`
	Phase  rollout.Phase `json:"phase"`
	// Supersedes is the id of the rollout this one replaced, if any.
	Supersedes     string    `json:"supersedes,omitempty"`
	StartedAt      time.Time `json:"started_at"`
	StageStartedAt time.Time `json:"stage_started_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Events are its stages and decisions, oldest first (at most MaxEvents).
	Events []rollout.Event `json:"events"`
}

// Active reports whether the rollout serves its base to some nodes.
func (s *State) Active() bool { return s.Phase == rollout.Running || s.Phase == rollout.Held }

// Selects reports whether the state's stage, with every stage before it,
// selects the node of scope.
func (s *State) Selects(scope string, node *corev3.Node) bool {
	for i := 0; i <= s.Stage && i < len(s.Plan.Stages); i++ {
		if s.Plan.Stages[i].Select.Matches(scope, node) {
			return true
		}
	}
	return false
}

// last reports whether the stage is the plan's last.
func (s *State) last() bool { return s.Stage >= len(s.Plan.Stages)-1 }

// event records an event at the current stage.
func (s *State) event(at time.Time, what, msg string, rej []stream.Rejection) {
	s.Events = append(s.Events, rollout.Event{At: at, What: what, Stage: s.Stage, Message: msg, Rejections: rej})
	if n := len(s.Events) - MaxEvents; n > 0 {
		s.Events = append(s.Events[:0:0], s.Events[n:]...)
	}
	s.UpdatedAt = at
}

// stageName is the name of stage i, for events and logs.
func (s *State) stageName(i int) string {
	if i >= 0 && i < len(s.Plan.Stages) {
		return s.Plan.Stages[i].Name
	}
	return strconv.Itoa(i)
}

// next returns the state after its stage's nodes all ACKed, or Promote: the
// next stage, or promoted after the last.
func (s State) next(at time.Time, why string) State { return s.nextAs(at, "", why) }

// nextAs is next with the event named what ("": "stage", or "promoted" after
// the last stage).
func (s State) nextAs(at time.Time, what, why string) State {
	s.Events = append([]rollout.Event(nil), s.Events...)
	if s.last() {
		s.Phase = rollout.Promoted
		s.event(at, cmp.Or(what, "promoted"), fmt.Sprintf("stage %s: %s; every node is served generation %d", s.stageName(s.Stage), why, s.Target), nil)
		return s
	}
	done := s.stageName(s.Stage)
	s.Stage++
	s.Phase = rollout.Running
	s.StageStartedAt = at
	s.event(at, cmp.Or(what, "stage"), fmt.Sprintf("stage %s: %s; stage %s starts", done, why, s.stageName(s.Stage)), nil)
	return s
}

// rolledBack returns the state after a rollback.
func (s State) rolledBack(at time.Time, why string, rej []stream.Rejection) State {
	s.Events = append([]rollout.Event(nil), s.Events...)
	s.Phase = rollout.RolledBack
	s.event(at, "rolled_back", fmt.Sprintf("%s; every node is served generation %d again", why, s.Base), rej)
	return s
}

// withoutRejections returns the state with no event keeping rejections:
// what a rollback too large for etcd is written from.
func (s State) withoutRejections() State {
	s.Events = append([]rollout.Event(nil), s.Events...)
	for i := range s.Events {
		s.Events[i].Rejections = nil
	}
	return s
}

// held returns the state after its window ended with Hold.
func (s State) held(at time.Time, why string) State {
	s.Events = append([]rollout.Event(nil), s.Events...)
	s.Phase = rollout.Held
	s.event(at, "held", why+"; waits for promote or abort", nil)
	return s
}

// ParseState reads a value of P/rollout/state.
func ParseState(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("rollout state: %w", err)
	}
	p, err := s.Plan.Normalized()
	if err != nil {
		return State{}, fmt.Errorf("rollout state %s: %w", s.ID, err)
	}
	s.Plan = p
	return s, nil
}

// Start returns what leanxds apply --rollout gives source.ApplyOptions.Rollout:
// the state of a new rollout of plan, superseding the one prev names if it
// runs. by says who started it, in its first event.
func Start(plan rollout.Plan, by string, now func() time.Time) (func(prev source.EtcdRollout, base, target int64) ([]byte, error), error) {
	plan, err := plan.Normalized()
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return func(prev source.EtcdRollout, base, target int64) ([]byte, error) {
		at := now().UTC()
		var suffix [3]byte
		_, _ = rand.Read(suffix[:])
		s := State{
			ID: fmt.Sprintf("gen%d-%s", target, hex.EncodeToString(suffix[:])), Base: base, Target: target,
			Plan: plan, Phase: rollout.Running, StartedAt: at, StageStartedAt: at,
		}
		msg := fmt.Sprintf("generation %d over generation %d, stage %s first", target, base, s.stageName(0))
		if by != "" {
			msg += ", by " + by
		}
		if prev.Active() {
			s.Supersedes = prev.ID
			msg += "; supersedes rollout " + prev.ID + " (its target never reached every node)"
		}
		s.event(at, "started", msg, nil)
		return json.Marshal(s)
	}, nil
}
