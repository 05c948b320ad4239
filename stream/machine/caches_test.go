package machine

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// P2: an explicit empty assignment is shared while something holds it, by the
// machines of one server only, and leaves the cache once nothing does: the
// cache shrinks as services go.
func TestEmptyAssignmentsShrink(t *testing.T) {
	c := NewCaches()
	held := make([]any, 0, 100)
	for i := range 100 {
		e := c.emptyAssignment(fmt.Sprint("svc-", i))
		require.NotNil(t, e)
		require.Same(t, e, c.emptyAssignment(e.Name), "shared while held")
		held = append(held, e)
	}
	require.Equal(t, 100, c.empty.size())
	other := NewCaches()
	require.NotSame(t, c.emptyAssignment("svc-0"), other.emptyAssignment("svc-0"), "two servers share nothing")

	runtime.KeepAlive(held)
	held = nil
	settle(t, "the assignments nothing holds are gone", func() bool { return c.empty.size() == 0 })

}
