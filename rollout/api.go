package rollout

import (
	"errors"
	"time"

	"github.com/leanxds/leanxds/stream"
)

// Stage is one step of a plan: the nodes it serves the new content (with
// every earlier stage's).
type Stage struct {
	// Name names the stage in logs and pages ("10%" for a share).
	Name   string          `json:"name"`
	Select stream.Selector `json:"select"`
}

// Action is what a rollout does when a stage's window ends before every node
// of the stage ACKed.
type Action string

const (
	// Hold keeps the stage where it is, waiting for Promote or Abort.
	Hold Action = "hold"
	// RollBack rolls the change back as a NACK would.
	RollBack Action = "rollback"
)

// DefaultWindow is a stage's window when the plan gives none.
const DefaultWindow = 5 * time.Minute

// Plan is how a change is rolled out.
type Plan struct {
	// Stages in order; a plan whose last stage does not select every node is
	// given a last stage that does ("100%").
	Stages []Stage `json:"stages"`
	// Window is how long a stage's nodes have to ACK; 0 means DefaultWindow.
	Window time.Duration `json:"window"`
	// MaxNACKs is how many of a stage's nodes must NACK for the change to be
	// rolled back; 0 means 1.
	MaxNACKs int `json:"max_nacks"`
	// OnTimeout is what a stage does when its window ends first; "" means Hold.
	OnTimeout Action `json:"on_timeout"`
}

// Phase is where a rollout is.
type Phase string

const (
	Running    Phase = "running"
	Held       Phase = "held"        // a window ended: waits for Promote or Abort
	Promoted   Phase = "promoted"    // every stage ACKed: every node runs the change
	RolledBack Phase = "rolled_back" // a NACK, a timeout or Abort put the base back everywhere
	Superseded Phase = "superseded"  // another change of its scopes replaced it
)

// ErrNoRollout is returned by what needs a rollout in progress when there is
// none.
var ErrNoRollout = errors.New("no rollout in progress")

// Status is what a rollout did and where it is, for pages and logs.
type Status struct {
	ID    string `json:"id"`
	Phase Phase  `json:"phase"`
	Plan  Plan   `json:"plan"`
	// Stage is the index in Plan.Stages of the stage being served.
	Stage int `json:"stage"`
	// Base and Target are the store revisions before and of the change.
	Base   uint64   `json:"base"`
	Target uint64   `json:"target"`
	Scopes []string `json:"scopes"`
	// Applied is where the current stage's nodes stand against Target.
	Applied        stream.Applied `json:"applied"`
	StartedAt      time.Time      `json:"started_at"`
	StageStartedAt time.Time      `json:"stage_started_at"`
	// Events are its stages and decisions, oldest first, with the NACKs that
	// caused a rollback.
	Events []Event `json:"events"`
}

// Event is one stage or decision of a rollout.
type Event struct {
	At      time.Time `json:"at"`
	What    string    `json:"what"`
	Stage   int       `json:"stage"`
	Message string    `json:"message"`
	// Rejections are the NACKs that caused a rollback.
	Rejections []stream.Rejection `json:"rejections,omitempty"`
}
