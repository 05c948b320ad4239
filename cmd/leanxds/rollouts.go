package main

import (
	"context"
	"time"

	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
)

// serve's rollouts (package rollout):
//
//  1. newServer makes the Manager, the stream.Router of the xDS server,
//     attached to it; the admin server shows it (/debug/rollouts) and drives
//     it (POST /admin/rollout/..., /admin/rollback).
//  2. With --rollout, every reload of the config directory after the first
//     commits through Manager.Stage (stageReload): what it changes is served
//     to the first stage's nodes only, and the Manager's Run moves it on from
//     the ACKs and NACKs. The load at start is never staged.
//  3. With --snapshot, the Manager's state travels in the snapshot (its
//     "rollout" attachment, written again when it changes) and is restored
//     before the directory's first load and before any client is served: a
//     rollout in progress goes on where it was. So does the digest of the
//     directory content last committed ("dir"): the first load after a
//     restart commits nothing if the files did not change, so a rollback or
//     an aborted rollout stands across the restart as it does while serving.

// rolloutAttachment names the Manager's state in a snapshot, dirAttachment
// the digest of the directory content last committed (source.Dir.Committed):
// restored, a rollback made before the restart stands until the files change.
const (
	rolloutAttachment = "rollout"
	dirAttachment     = "dir"
)

// rolloutPlan returns the plan of --rollout and its flags; nil without
// --rollout.
func (o *serveOptions) rolloutPlan() (*rollout.Plan, error) {
	if o.rollout == "" {
		return nil, nil
	}
	stages, err := rollout.ParseStages(o.rollout)
	if err != nil {
		return nil, usageErrorf("serve: --rollout %q: %v", o.rollout, err)
	}
	action := rollout.Hold
	if o.rolloutOnTimeout == "rollback" {
		action = rollout.RollBack
	}
	return &rollout.Plan{Stages: stages, Window: o.rolloutWindow, MaxNACKs: o.rolloutMaxNACKs, OnTimeout: action}, nil
}

// newRollouts makes the Manager of the server's store; its state goes into
// the snapshot whenever it changes.
func (s *server) newRollouts() *rollout.Manager {
	var m *rollout.Manager
	m = rollout.New(s.st, rollout.Options{Logger: s.log, OnChange: func() {
		if s.persister == nil {
			return
		}
		data, err := m.MarshalState()
		if err != nil {
			s.log.Error("rollout state not saved in the snapshot", "err", err)
			return
		}
		if err := s.persister.SetAttachment(rolloutAttachment, data); err != nil {
			s.log.Error("rollout state not saved in the snapshot", "err", err)
		}
		// A rollback or an abort leaves the store unlike the directory.
		s.saveDirDigest()
	}})
	return m
}

// saveDirDigest puts the digest of the directory content last committed in
// the next snapshot. It is saved when a reload changes the store, and when
// the rollouts change (a rollback, an abort): a reload that finds the store
// already as the directory says needs none, and saves none, so that a
// snapshot is not written again for it.
func (s *server) saveDirDigest() {
	if s.persister == nil || s.source == nil {
		return
	}
	if err := s.persister.SetAttachment(dirAttachment, s.source.Committed()); err != nil {
		s.log.Error("the config directory's digest not saved in the snapshot", "err", err)
	}
}

// stageReload is the config directory's commit under --rollout
// (source.DirOptions.Commit): once the initial config is loaded, a reload's
// commit is staged. A reload that changes nothing starts no rollout.
func (s *server) stageReload(ctx context.Context) func(commit func() (store.Result, error)) (store.Result, error) {
	return func(commit func() (store.Result, error)) (store.Result, error) {
		if s.plan == nil || !s.ready.Load() {
			return commit()
		}
		var (
			res       store.Result
			commitErr error
		)
		r, err := s.rollouts.Stage(ctx, *s.plan, "dir "+s.opts.configDir, func() (store.Result, error) {
			res, commitErr = commit()
			return res, commitErr
		})
		switch {
		case commitErr != nil:
			return res, commitErr
		case err != nil:
			// The commit is in the store: it is served to every node.
			s.log.Error("reload applied to every node: it could not be staged", "revision", res.Revision, "err", err)
		case r != nil:
			st, _ := s.rollouts.Status()
			s.log.Info("reload staged", "rollout", st.ID, "revision", st.Target, "base", st.Base, "scopes", st.Scopes,
				"stage", st.Plan.Stages[0].Name)
		}
		return res, nil
	}
}

// restoreAttachments puts back the rollout state the restored snapshot carried,
// before the directory's first load and before any client is served, and
// tells the directory which content the store last took from it.
func (s *server) restoreAttachments(info persist.Info) {
	if digest := info.Attachments[dirAttachment]; s.source != nil && len(digest) > 0 {
		s.source.AssumeCommitted(digest)
		s.saveDirDigest()
	}
	data, ok := info.Attachments[rolloutAttachment]
	if !ok || len(data) == 0 {
		return
	}
	if err := s.rollouts.RestoreState(data); err != nil {
		s.log.Error("the rollout in progress at the last snapshot is not restored", "err", err)
		return
	}
	// The next snapshot carries it again.
	if err := s.persister.SetAttachment(rolloutAttachment, data); err != nil {
		s.log.Error("rollout state not saved in the snapshot", "err", err)
	}
	if st, ok := s.rollouts.Status(); ok {
		s.log.Info("rollout restored from the snapshot", "rollout", st.ID, "phase", st.Phase,
			"stage", st.Stage+1, "base", st.Base, "target", st.Target)
	}
}

// startRollouts runs the Manager until stop is called.
func (s *server) startRollouts(ctx context.Context) (stop func()) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.rollouts.Run(rctx); err != nil && rctx.Err() == nil {
			s.log.Error("rollouts stopped", "err", err)
		}
	}()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.log.Warn("rollouts did not stop within 5s")
		}
	}
}
