package conformance_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/leanxds/leanxds/conformance"
)

var update = flag.Bool("update", false, "rewrite RULES.md from the rules and scenarios")

// TestRulesMD checks that RULES.md is what the rules and scenarios generate, so
// that it cannot drift from the code. Run with -update to rewrite it.
func TestRulesMD(t *testing.T) {
	want := rulesMarkdown()
	if *update {
		if err := os.WriteFile("RULES.md", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile("RULES.md")
	if err != nil {
		t.Fatalf("%v; generate it with: go test ./conformance -run TestRulesMD -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("RULES.md is out of date with the rules and scenarios; regenerate it with: go test ./conformance -run TestRulesMD -update")
	}
}

// TestEveryRuleHasAScenario checks the registry: every implemented rule has a
// scenario, a rule marked not implemented has none, every scenario cites known
// rules and is run by some client, and scenario ids are unique.
func TestEveryRuleHasAScenario(t *testing.T) {
	proved := map[string][]string{}
	ids := map[string]bool{}
	for _, s := range scenarios() {
		if ids[s.id] {
			t.Errorf("scenario id %q is used twice", s.id)
		}
		ids[s.id] = true
		if len(s.runs()) == 0 {
			t.Errorf("scenario %q is run by no client", s.id)
		}
		if len(s.steps) > 0 && (len(s.run) > 0 || len(s.scripts) > 0) {
			t.Errorf("scenario %q is both a journey and a conversation", s.id)
		}
		for c := range s.clientRules {
			if !slices.Contains(s.runs(), c) {
				t.Errorf("scenario %q has rules for %s, which does not run it", s.id, c)
			}
		}
		for _, c := range s.runs() {
			rules := s.rulesFor(c)
			if len(rules) == 0 {
				t.Errorf("scenario %q proves no rule with %s", s.id, c)
			}
			for _, id := range rules {
				if _, ok := conformance.RuleByID(id); !ok {
					t.Errorf("scenario %q cites %s, which is not a rule", s.id, id)
				}
				proved[id] = append(proved[id], s.id)
			}
		}
	}
	for _, r := range conformance.Rules {
		switch {
		case r.NotImplemented == "" && len(proved[r.ID]) == 0:
			t.Errorf("rule %s has no scenario; add one, or mark the rule NotImplemented with the reason", r.ID)
		case r.NotImplemented != "" && len(proved[r.ID]) > 0:
			t.Errorf("rule %s is marked not implemented but scenarios %v prove it", r.ID, proved[r.ID])
		}
	}
	for _, g := range conformance.Groups {
		if !slices.ContainsFunc(conformance.Rules, func(r conformance.Rule) bool { return strings.HasPrefix(r.ID, g.Prefix) }) {
			t.Errorf("group %s holds no rule", g.Prefix)
		}
	}
}

// rulesMarkdown renders RULES.md.
func rulesMarkdown() []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Conformance rules\n\n")
	p("<!-- Generated from conformance/rules.go and the scenarios by\n")
	p("     go test ./conformance -run TestRulesMD -update\n")
	p("     Do not edit by hand: a test fails when this file differs from the code. -->\n\n")
	p("Every server-side xDS rule leanxds implements, numbered in conformance/rules.go, with\n")
	p("the part of the protocol it comes from and the scenarios that prove it. A scenario is a\n")
	p("sequence of store commits and expectations; next to each scenario are the clients\n")
	p("that run it:\n\n")
	p("- `memory-sotw`, `memory-delta`: the scripted client's conversations run in memory,\n")
	p("  against the server's own stream sessions with no gRPC in between, where silence is\n")
	p("  checked exactly and instantly;\n")
	p("- `scripted-sotw`, `scripted-delta`: the same conversations over gRPC on 127.0.0.1,\n")
	p("  and the reactive client that follows references as a proxyless client does;\n")
	p("- `grpc-go`: grpc-go's xDS client (`google.golang.org/grpc/xds`) making real RPCs;\n")
	p("- `envoy-sotw`, `envoy-delta`: Envoy (`ENVOY_BIN`) sending real HTTP requests.\n\n")
	p("Sources are sections of Envoy's \"xDS REST and gRPC protocol\" page unless they name\n")
	p("the cncf/xds TP1 proposal; \"practice\" marks what real clients taught.\n")

	byRule := map[string][]string{}
	for _, s := range scenarios() {
		for _, c := range s.runs() {
			for _, id := range s.rulesFor(c) {
				byRule[id] = append(byRule[id], s.id+"\x00"+string(c))
			}
		}
	}
	for _, g := range conformance.Groups {
		p("\n## %s\n\n", g.Title)
		p("| Rule | What the server does | Source | Proved by |\n")
		p("|---|---|---|---|\n")
		for _, r := range conformance.Rules {
			if !strings.HasPrefix(r.ID, g.Prefix) {
				continue
			}
			proof := "**not implemented:** " + r.NotImplemented
			if r.NotImplemented == "" {
				proof = proofs(byRule[r.ID])
			}
			p("| %s | %s | %s | %s |\n", r.ID, cell(r.Text), cell(r.Source), proof)
		}
	}

	p("\n## Scenarios\n\n")
	p("| Scenario | What it shows | Rules | Clients |\n")
	p("|---|---|---|---|\n")
	all := scenarios()
	slices.SortFunc(all, func(a, b scenario) int { return strings.Compare(a.id, b.id) })
	for _, s := range all {
		var rules []string
		for _, c := range s.runs() {
			for _, id := range s.rulesFor(c) {
				if !slices.Contains(rules, id) {
					rules = append(rules, id)
				}
			}
		}
		var clients []string
		for _, c := range s.runs() {
			clients = append(clients, "`"+string(c)+"`")
		}
		p("| `%s` | %s | %s | %s |\n", s.id, cell(s.title), strings.Join(sortRuleIDs(rules), ", "), strings.Join(clients, ", "))
	}
	return b.Bytes()
}

// proofs renders "scenario (client, client)" pairs, grouped by scenario.
func proofs(pairs []string) string {
	var order []string
	clients := map[string][]string{}
	for _, p := range pairs {
		s, c, _ := strings.Cut(p, "\x00")
		if _, ok := clients[s]; !ok {
			order = append(order, s)
		}
		clients[s] = append(clients[s], c)
	}
	slices.Sort(order)
	var out []string
	for _, s := range order {
		out = append(out, fmt.Sprintf("`%s` (%s)", s, strings.Join(clients[s], ", ")))
	}
	return strings.Join(out, "<br>")
}

// sortRuleIDs orders rule ids as conformance.Rules does.
func sortRuleIDs(ids []string) []string {
	order := map[string]int{}
	for i, r := range conformance.Rules {
		order[r.ID] = i
	}
	slices.SortFunc(ids, func(a, b string) int { return order[a] - order[b] })
	return ids
}

// cell escapes text for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
