package machine_test

import (
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/status"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

func commitRev(t *testing.T, st *store.Store, changes ...store.Change) uint64 {
	t.Helper()
	res, err := st.Commit(changes...)
	require.NoError(t, err)
	return res.Revision
}

// A SotW machine records the revision of the view each response was made from
// and of the view it last computed what to send at; a stream stands ACKed for a
// revision once it read a view at or past it and its client ACKed all it was
// sent, NACKed when it rejected a response made at or past it.
func TestStandingSotW(t *testing.T) {
	st := store.New()
	r1 := commitRev(t, st, store.Set(scope, xdstest.Cluster("a")))
	m := machine.NewSotW(machine.Config{Scope: scope, Node: edgeNode()})
	assert.Equal(t, machine.Standing{Answered: true}, m.Status().Standing(r1), "nothing received: pending")

	_, err := m.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: cds}, time.Time{}, st.View())
	require.NoError(t, err)
	assert.Zero(t, m.Status().ViewRevision(), "a request alone computes nothing")
	assert.False(t, m.Status().Standing(r1).ACKed)

	rs := m.Responses(st.View())
	require.Len(t, rs, 1)
	s := m.Status()
	assert.Equal(t, r1, s.ViewRevision())
	assert.Equal(t, r1, s.Types()[0].SentRevision)
	sd := s.Standing(r1)
	assert.False(t, sd.ACKed, "sent, not answered")
	assert.False(t, sd.Answered)
	assert.Zero(t, s.ACKedRevision())

	ack := &discoveryv3.DiscoveryRequest{TypeUrl: cds, VersionInfo: rs[0].Version, ResponseNonce: rs[0].Nonce}
	_, err = m.Receive(ack, time.Time{}, st.View())
	require.NoError(t, err)
	assert.Equal(t, machine.Standing{ACKed: true, Answered: true}, m.Status().Standing(r1))
	assert.Equal(t, r1, m.Status().ACKedRevision())

	// A commit to another scope: the client needs nothing new, yet is not
	// known to run r2 until the machine reads a view at r2.
	r2 := commitRev(t, st, store.Set("other", xdstest.Cluster("b")))
	assert.False(t, m.Status().Standing(r2).ACKed, "not read r2 yet")
	assert.Empty(t, m.Responses(st.View()), "R6")
	assert.Equal(t, machine.Standing{ACKed: true, Answered: true}, m.Status().Standing(r2), "versions are digests: ACKed without a response")
	assert.Equal(t, r2, m.Status().ACKedRevision())
	assert.Equal(t, r1, m.Status().Types()[0].SentRevision, "the response was made at r1")

	// A change the client rejects: NACKed for r3 and what came before it.
	r3 := commitRev(t, st, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(9*time.Second))))
	rs = m.Responses(st.View())
	require.Len(t, rs, 1)
	assert.Equal(t, r3, m.Status().Types()[0].SentRevision)
	nack := &discoveryv3.DiscoveryRequest{TypeUrl: cds, VersionInfo: ack.VersionInfo, ResponseNonce: rs[0].Nonce,
		ErrorDetail: &status.Status{Code: 3, Message: "bad timeout"}}
	_, err = m.Receive(nack, time.Time{}, st.View())
	require.NoError(t, err)
	sd = m.Status().Standing(r3)
	require.NotNil(t, sd.NACK)
	assert.Equal(t, cds, sd.TypeURL)
	assert.Equal(t, r3, sd.NACK.Revision)
	assert.Equal(t, rs[0].Version, sd.NACK.RejectedVersion)
	assert.Equal(t, "bad timeout", sd.NACK.Message)
	assert.False(t, sd.ACKed)
	assert.True(t, sd.Answered)
	assert.NotNil(t, m.Status().Standing(r1).NACK, "rejected content made past r1")
	r4 := commitRev(t, st, store.Set("other", xdstest.Cluster("c")))
	assert.Empty(t, m.Responses(st.View()), "R6: a NACKed version is not re-sent")
	sd = m.Status().Standing(r4)
	require.NotNil(t, sd.NACK, "R26: r4 would send the content rejected: the NACK stands against r4")
	assert.Equal(t, r4, sd.NACK.Revision)
	assert.Equal(t, rs[0].Version, sd.NACK.RejectedVersion)
	assert.False(t, sd.ACKed, "the client still runs what it held before r3")
	assert.Equal(t, r2, m.Status().ACKedRevision())

	// The fix: ACKed again, the NACK is history.
	r5 := commitRev(t, st, store.Set(scope, xdstest.Cluster("a")))
	rs = m.Responses(st.View())
	require.Len(t, rs, 1)
	sd = m.Status().Standing(r5)
	assert.Nil(t, sd.NACK, "the NACK was of r3's content")
	assert.False(t, sd.ACKed, "pending until answered")
	assert.NotNil(t, m.Status().Standing(r3).NACK, "until the client answers, its newest answer rejects r3's content")
	_, err = m.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: cds, VersionInfo: rs[0].Version, ResponseNonce: rs[0].Nonce}, time.Time{}, st.View())
	require.NoError(t, err)
	assert.Equal(t, machine.Standing{ACKed: true, Answered: true}, m.Status().Standing(r3))
	assert.Equal(t, r5, m.Status().ACKedRevision())
	assert.Equal(t, r4, m.Status().Types()[0].LastNACK.Revision, "the NACK keeps the newest revision it stood against")

	// A new subscription is owed an answer: pending until computed and ACKed.
	_, err = m.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: lds}, time.Time{}, st.View())
	require.NoError(t, err)
	assert.False(t, m.Status().Standing(r5).ACKed, "owed the first LDS answer (S1)")
}

// A delta machine attributes a NACK to the revision of the response it
// rejects, even one older than the newest sent.
func TestStandingDelta(t *testing.T) {
	st := store.New()
	commitRev(t, st, store.Set(scope, xdstest.Cluster("a")))
	d := machine.NewDelta(machine.Config{Scope: scope, Node: edgeNode()})
	_, err := d.Receive(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResourceNamesSubscribe: []string{"*"}}, time.Time{}, st.View())
	require.NoError(t, err)
	first := d.Responses(st.View())
	require.Len(t, first, 1)
	r2 := commitRev(t, st, store.Set(scope, xdstest.Cluster("b")))
	second := d.Responses(st.View())
	require.Len(t, second, 1)
	assert.Equal(t, r2, d.Status().Types()[0].SentRevision)

	_, err = d.Receive(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: first[0].Nonce}, time.Time{}, st.View())
	require.NoError(t, err)
	assert.False(t, d.Status().Standing(r2).ACKed, "the newest response is unanswered")
	_, err = d.Receive(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: second[0].Nonce,
		ErrorDetail: &status.Status{Message: "no b"}}, time.Time{}, st.View())
	require.NoError(t, err)
	sd := d.Status().Standing(r2)
	require.NotNil(t, sd.NACK)
	assert.Equal(t, r2, sd.NACK.Revision)
	assert.Equal(t, "no b", sd.NACK.Message)

	r3 := commitRev(t, st, store.Set(scope, xdstest.Cluster("c")))
	third := d.Responses(st.View())
	require.Len(t, third, 1)
	_, err = d.Receive(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: third[0].Nonce}, time.Time{}, st.View())
	require.NoError(t, err)
	assert.Equal(t, machine.Standing{ACKed: true, Answered: true}, d.Status().Standing(r3))
	assert.Nil(t, d.Status().Standing(r2).NACK, "the newest answer is an ACK")
}
