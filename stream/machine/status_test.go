package machine_test

import (
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

// A machine hands out an immutable status snapshot after each step: a new one
// when what it shows changed, the same one otherwise.
func TestStatusSnapshots(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set(scope, xdstest.Cluster("a")))
	require.NoError(t, err)
	m := machine.NewSotW(machine.Config{Scope: scope, Node: edgeNode()})
	require.Nil(t, m.Status(), "nothing received yet")
	assert.Nil(t, m.Status().Types())

	_, err = m.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: cds}, time.Time{}, st.View())
	require.NoError(t, err)
	subscribed := m.Status()
	require.Len(t, subscribed.Types(), 1)
	assert.True(t, subscribed.Types()[0].Wildcard)
	assert.Empty(t, subscribed.Types()[0].VersionSent)

	rs := m.Responses(st.View())
	require.Len(t, rs, 1)
	sent := m.Status()
	assert.NotSame(t, subscribed, sent)
	assert.Equal(t, rs[0].Version, sent.Types()[0].VersionSent)
	assert.Equal(t, rs[0].Nonce, sent.Types()[0].NonceSent)
	assert.Empty(t, subscribed.Types()[0].VersionSent, "an earlier snapshot does not change")

	assert.Empty(t, m.Responses(st.View()), "R6")
	assert.Same(t, sent, m.Status(), "nothing changed: the same snapshot")

	// R14: a subscribed name the store lacks is Missing, until it exists.
	_, err = m.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: rds, ResourceNames: []string{"r"}}, time.Time{}, st.View())
	require.NoError(t, err)
	m.Responses(st.View())
	missing := m.Status()
	require.Len(t, missing.Types(), 2)
	assert.Equal(t, []string{"r"}, missing.Types()[1].Missing)
	_, err = st.Commit(store.Set(scope, xdstest.SimpleRoute("r", "a")))
	require.NoError(t, err)
	m.Responses(st.View())
	assert.Empty(t, m.Status().Types()[1].Missing)
	assert.Equal(t, []string{"r"}, missing.Types()[1].Missing, "an earlier snapshot does not change")
}
