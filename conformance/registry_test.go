package conformance_test

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"

	"github.com/leanxds/leanxds/conformance"
	"github.com/leanxds/leanxds/stream"
)

// client names a client that runs scenarios.
type client string

// The clients, in the order the summary lists them.
const (
	// scriptedSotW and scriptedDelta are the scripted ADS client (internal/conv)
	// and the reactive client of journeys (reactive_test.go), over SotW and delta.
	scriptedSotW  client = "scripted-sotw"
	scriptedDelta client = "scripted-delta"
	// memorySotW and memoryDelta are the scripted client's conversations run in
	// memory, against the server's state machine with no gRPC in between
	// (conv.Memory, scripted_test.go).
	memorySotW  client = "memory-sotw"
	memoryDelta client = "memory-delta"
	// grpcGo is grpc-go's xDS client, making real RPCs (grpc_test.go).
	grpcGo client = "grpc-go"
	// envoySotW and envoyDelta are Envoy over ADS (GRPC, then DELTA_GRPC), when
	// ENVOY_BIN points at a binary (envoy_test.go).
	envoySotW  client = "envoy-sotw"
	envoyDelta client = "envoy-delta"
)

var allClients = []client{memorySotW, memoryDelta, scriptedSotW, scriptedDelta, grpcGo, envoySotW, envoyDelta}

// inMemory reports whether c runs its conversations in memory.
func (c client) inMemory() bool { return c == memorySotW || c == memoryDelta }

// scripted returns the scripted client whose conversations c runs: itself, or
// for an in-memory client the scripted client of its variant.
func (c client) scripted() client {
	switch c {
	case memorySotW:
		return scriptedSotW
	case memoryDelta:
		return scriptedDelta
	}
	return c
}

// scenario proves rules: a sequence of store commits and expectations, written
// as a scripted conversation that runs over the wire and in memory (scripts), as
// an exact conversation for one client (run), or as a journey of steps that any
// client can run (steps, clients).
type scenario struct {
	// id names the scenario in test names, RULES.md and the summary.
	id string
	// title says in one line what the scenario shows.
	title string
	// rules are the ids of the rules every client running the scenario proves.
	rules []string
	// clientRules are rules one client proves on top of rules: a rule about that
	// client's variant or behaviour. The rules of scripted-sotw and
	// scripted-delta are those of memory-sotw and memory-delta too.
	clientRules map[client][]string
	// scripts holds the scenario as a conversation of the scripted client, by
	// variant (scriptedSotW, scriptedDelta), written against a server: each runs
	// over the wire (scripted-*) and in memory (memory-*). A script keyed by
	// memorySotW or memoryDelta runs in memory only: it needs an exactness the
	// wire cannot give (say, two requests arriving together).
	scripts map[client]func(t *testing.T, s server)
	// opts configure the server the scripts run against (limits, scopes).
	opts stream.Options
	// run holds the scenario as a conversation, by client.
	run map[client]func(t *testing.T)
	// steps and clients are the scenario as a journey: steps any client can
	// run, and the clients that run them.
	steps   []step
	clients []client
}

// runs returns the clients that run the scenario, in summary order.
func (s scenario) runs() []client {
	var out []client
	for _, c := range allClients {
		if _, ok := s.run[c]; ok || s.script(c) != nil || slices.Contains(s.clients, c) {
			out = append(out, c)
		}
	}
	return out
}

// script returns the conversation c runs of the scenario's scripts, nil if none.
func (s scenario) script(c client) func(*testing.T, server) {
	if fn := s.scripts[c]; fn != nil {
		return fn
	}
	if c.inMemory() {
		return s.scripts[c.scripted()]
	}
	return nil
}

// rulesFor returns the rules c proves by running the scenario.
func (s scenario) rulesFor(c client) []string {
	return append(slices.Clone(s.rules), s.clientRules[c.scripted()]...)
}

// scenarios returns every scenario of the suite.
func scenarios() []scenario {
	var all []scenario
	for _, group := range [][]scenario{wireScenarios, requestScenarios, livenessScenarios, transitionScenarios, xdstpScenarios, resumeScenarios, appliedScenarios, rolloutScenarios, journeys, grpcScenarios} {
		all = append(all, group...)
	}
	return all
}

// outcome is what one client made of one scenario.
type outcome struct {
	scenario, client, result string
}

var results struct {
	sync.Mutex
	list []outcome
	// skipped are the reasons clients were skipped, by client.
	skipped map[client]string
}

func record(s scenario, c client, t *testing.T) {
	r := "pass"
	switch {
	case t.Failed():
		r = "FAIL"
	case t.Skipped():
		r = "skip"
	}
	results.Lock()
	defer results.Unlock()
	results.list = append(results.list, outcome{scenario: s.id, client: string(c), result: r})
}

// runClient runs every scenario c runs, each in its own parallel subtest with its
// own server. A non-empty skip skips them all with that message.
func runClient(t *testing.T, c client, skip string) {
	if skip != "" {
		results.Lock()
		if results.skipped == nil {
			results.skipped = map[client]string{}
		}
		results.skipped[c] = skip
		results.Unlock()
	}
	for _, s := range scenarios() {
		if !slices.Contains(s.runs(), c) {
			continue
		}
		t.Run(s.id, func(t *testing.T) {
			t.Parallel()
			t.Cleanup(func() { record(s, c, t) })
			if skip != "" {
				t.Skip(skip)
			}
			if fn := s.script(c); fn != nil {
				fn(t, serverFor(t, c, s.opts))
				return
			}
			if fn := s.run[c]; fn != nil {
				fn(t)
				return
			}
			runJourney(t, c, s)
		})
	}
}

// TestMemorySotW runs the scripted state-of-the-world conversations in memory.
func TestMemorySotW(t *testing.T) { runClient(t, memorySotW, "") }

// TestMemoryDelta runs the scripted delta conversations in memory.
func TestMemoryDelta(t *testing.T) { runClient(t, memoryDelta, "") }

// TestScriptedSotW runs the scenarios of the scripted state-of-the-world client.
func TestScriptedSotW(t *testing.T) { runClient(t, scriptedSotW, "") }

// TestScriptedDelta runs the scenarios of the scripted delta client.
func TestScriptedDelta(t *testing.T) { runClient(t, scriptedDelta, "") }

// TestGRPCGo runs the scenarios of grpc-go's xDS client.
func TestGRPCGo(t *testing.T) { runClient(t, grpcGo, "") }

// TestEnvoySotW runs the scenarios of Envoy over SotW ADS.
func TestEnvoySotW(t *testing.T) { runClient(t, envoySotW, envoySkipReason()) }

// TestEnvoyDelta runs the scenarios of Envoy over delta ADS.
func TestEnvoyDelta(t *testing.T) { runClient(t, envoyDelta, envoySkipReason()) }

// TestMain prints the summary after the tests: which rule passed with which
// client.
func TestMain(m *testing.M) {
	code := m.Run()
	printSummary(os.Stdout)
	os.Exit(code)
}

// printSummary writes the table of rule, scenario, client and result for what
// ran. Nothing is written when no scenario ran (go test -run selecting none).
func printSummary(w io.Writer) {
	results.Lock()
	defer results.Unlock()
	if len(results.list) == 0 {
		return
	}
	byScenario := map[string]scenario{}
	for _, s := range scenarios() {
		byScenario[s.id] = s
	}
	type row struct{ rule, scenario, client, result string }
	var rows []row
	count := map[string]int{}
	for _, o := range results.list {
		count[o.result]++
		for _, r := range byScenario[o.scenario].rulesFor(client(o.client)) {
			rows = append(rows, row{r, o.scenario, o.client, o.result})
		}
	}
	order := map[string]int{}
	for i, r := range conformance.Rules {
		order[r.ID] = i
	}
	clientOrder := map[string]int{}
	for i, c := range allClients {
		clientOrder[string(c)] = i
	}
	slices.SortFunc(rows, func(a, b row) int {
		if d := order[a.rule] - order[b.rule]; d != 0 {
			return d
		}
		if d := strings.Compare(a.scenario, b.scenario); d != 0 {
			return d
		}
		return clientOrder[a.client] - clientOrder[b.client]
	})

	fmt.Fprintf(w, "\nleanxds conformance: %d runs of scenarios: %d pass, %d fail, %d skip\n\n",
		len(results.list), count["pass"], count["FAIL"], count["skip"])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSCENARIO\tCLIENT\tRESULT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.rule, r.scenario, r.client, r.result)
	}
	_ = tw.Flush()
	for _, r := range conformance.Rules {
		if r.NotImplemented != "" {
			fmt.Fprintf(w, "%s is not implemented: %s\n", r.ID, r.NotImplemented)
		}
	}
	for _, c := range allClients {
		if why := results.skipped[c]; why != "" {
			fmt.Fprintf(w, "%s skipped: %s\n", c, why)
		}
	}
}
