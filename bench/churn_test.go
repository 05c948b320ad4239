package bench_test

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/leanxds/leanxds/bench/churn"
)

var churnDuration = flag.Duration("churn.duration", 3*time.Second,
	"how long the churn soak's clients keep coming (minutes for a soak: -churn.duration=10m -timeout 0)")

// TestChurnSoak runs the churn soak (bench/churn): waves of clients, silent
// streams and stalled clients against one server while its config changes every
// second; once they have gone, the server holds no stream and no connection,
// and goroutines, open files and heap are back to their baseline within
// churn.DefaultMargins. It asserts nothing about time.
func TestChurnSoak(t *testing.T) {
	res, err := churn.Run(context.Background(), churn.Config{Duration: *churnDuration, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d waves: %d clients, %d silent streams, %d stalled clients, %d changes", res.Waves, res.Clients, res.Silent, res.Stalled, res.Changes)
	t.Logf("baseline: %v\npeak:     %v\nend:      %v", res.Baseline, res.Peak, res.End)
	if err := res.Check(churn.DefaultMargins); err != nil {
		t.Error(err)
	}
}

// testLog writes lines to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
