package rollout

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/leanxds/leanxds/stream"
)

// ParseStages reads a plan's stages as the binary's --rollout flag gives
// them: stages separated by commas, each one of
//
//	10%                a share of the nodes by the hash of their id (stream.Bucket)
//	ids=edge-1|edge-2  the nodes of these ids
//	metadata.k=v       the nodes whose metadata field k (dotted for nested
//	                   structs) is v
//
// "1%,10%,100%" is three stages; "ids=canary-1,25%,100%" starts with one
// node. A stage serves its nodes and those of every stage before it.
func ParseStages(s string) ([]Stage, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("no stages: want a list such as 1%%,10%%,100%%")
	}
	var out []Stage
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		st, err := parseStage(part)
		if err != nil {
			return nil, fmt.Errorf("stage %d %q: %w", i+1, part, err)
		}
		out = append(out, st)
	}
	return out, nil
}

func parseStage(s string) (Stage, error) {
	var sel stream.Selector
	switch {
	case s == "":
		return Stage{}, fmt.Errorf("empty stage")
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil {
			return Stage{}, fmt.Errorf("want a percentage such as 10%%")
		}
		if p <= 0 {
			return Stage{}, fmt.Errorf("a share must be above 0%%")
		}
		if p < 100 {
			sel.Percent = p
		} else if p > 100 {
			return Stage{}, fmt.Errorf("percent %g is not in (0, 100]", p)
		}
	case strings.HasPrefix(s, "ids="):
		for id := range strings.SplitSeq(strings.TrimPrefix(s, "ids="), "|") {
			if id = strings.TrimSpace(id); id != "" {
				sel.IDs = append(sel.IDs, id)
			}
		}
		if len(sel.IDs) == 0 {
			return Stage{}, fmt.Errorf("want node ids: ids=a|b")
		}
	case strings.HasPrefix(s, "metadata."):
		k, v, ok := strings.Cut(strings.TrimPrefix(s, "metadata."), "=")
		if !ok {
			return Stage{}, fmt.Errorf("want metadata.key=value")
		}
		sel.Metadata = map[string]string{k: v}
	default:
		return Stage{}, fmt.Errorf("want a percentage (10%%), ids=a|b or metadata.key=value")
	}
	if err := sel.Validate(); err != nil {
		return Stage{}, err
	}
	return Stage{Name: s, Select: sel}, nil
}

// selectsAll reports whether a selector selects every node.
func selectsAll(s *stream.Selector) bool {
	return s.Scope == "" && len(s.IDs) == 0 && len(s.Metadata) == 0 && (s.Percent <= 0 || s.Percent >= 100)
}

// Normalized returns the plan with its defaults filled in: a window, a NACK
// threshold, a timeout action, stage names, and a last stage of every node;
// an error names a stage whose selector is not valid, or a timeout action
// that is not one. Stage does it; so does a rollout kept elsewhere (etcd).
func (p Plan) Normalized() (Plan, error) {
	stages := make([]Stage, 0, len(p.Stages)+1)
	for i, st := range p.Stages {
		if err := st.Select.Validate(); err != nil {
			return Plan{}, fmt.Errorf("stage %d: %w", i+1, err)
		}
		if st.Name == "" {
			st.Name = st.Select.String()
		}
		stages = append(stages, st)
	}
	if len(stages) == 0 || !selectsAll(&stages[len(stages)-1].Select) {
		stages = append(stages, Stage{Name: "100%"})
	}
	p.Stages = stages
	if p.Window <= 0 {
		p.Window = DefaultWindow
	}
	if p.MaxNACKs <= 0 {
		p.MaxNACKs = 1
	}
	switch p.OnTimeout {
	case "":
		p.OnTimeout = Hold
	case Hold, RollBack:
	default:
		return Plan{}, fmt.Errorf("on_timeout %q: want %q or %q", p.OnTimeout, Hold, RollBack)
	}
	return p, nil
}
