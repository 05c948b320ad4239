package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// A worker process is the generator's own binary run with the worker flag: it
// reads one JSON request a line on stdin and answers each with one JSON line on
// stdout. It exits when stdin closes, so it never outlives its coordinator.

type workerRequest struct {
	Op          string        `json:"op"`
	Config      *WorkerConfig `json:"config,omitempty"`
	Start       int64         `json:"start,omitempty"`
	TimeoutNano int64         `json:"timeout_nano,omitempty"`
	Probe       *Probe        `json:"probe,omitempty"`
	Seq         int64         `json:"seq,omitempty"`
	CommitStart int64         `json:"commit_start,omitempty"`
}

type workerResponse struct {
	Err     string         `json:"err,omitempty"`
	Connect *ConnectReport `json:"connect,omitempty"`
	Collect *CollectReport `json:"collect,omitempty"`
	Check   *CheckReport   `json:"check,omitempty"`
}

// ServeWorker runs a worker process: requests from r, answers to w.
func ServeWorker(r io.Reader, w io.Writer) error {
	in := bufio.NewScanner(r)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	enc := json.NewEncoder(w)
	var wk Worker
	defer func() {
		if wk != nil {
			wk.Close()
		}
	}()
	for in.Scan() {
		var req workerRequest
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			return err
		}
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if req.TimeoutNano > 0 {
			ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutNano))
		}
		var resp workerResponse
		var err error
		switch {
		case req.Op == "init" && req.Config != nil:
			wk = NewWorker(*req.Config)
		case wk == nil:
			err = errors.New("worker not initialised")
		case req.Op == "connect":
			var rep ConnectReport
			rep, err = wk.Connect(ctx, time.Unix(0, req.Start))
			resp.Connect = &rep
		case req.Op == "arm" && req.Probe != nil:
			err = wk.Arm(ctx, *req.Probe)
		case req.Op == "collect":
			var rep CollectReport
			rep, err = wk.Collect(ctx, req.Seq, req.CommitStart)
			resp.Collect = &rep
		case req.Op == "check":
			var rep CheckReport
			rep, err = wk.Check(ctx)
			resp.Check = &rep
		case req.Op == "close":
			cancel()
			return nil
		default:
			err = fmt.Errorf("unknown request %q", req.Op)
		}
		cancel()
		if err != nil {
			resp.Err = err.Error()
		}
		if err := enc.Encode(&resp); err != nil {
			return err
		}
	}
	return in.Err()
}

// remote is a Worker in a child process.
type remote struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Scanner
}

// startRemote starts exe with args as a worker process running cfg.
func startRemote(exe string, args []string, cfg WorkerConfig) (*remote, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	// A worker dies with its coordinator, even one killed in the middle of a phase.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<28)
	r := &remote{cmd: cmd, in: in, out: sc}
	if _, err := r.call(context.Background(), workerRequest{Op: "init", Config: &cfg}); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *remote) call(ctx context.Context, req workerRequest) (workerResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := ctx.Deadline(); ok {
		req.TimeoutNano = int64(time.Until(d))
	}
	b, err := json.Marshal(req)
	if err != nil {
		return workerResponse{}, err
	}
	if _, err := r.in.Write(append(b, '\n')); err != nil {
		return workerResponse{}, fmt.Errorf("worker process: %w", err)
	}
	if !r.out.Scan() {
		return workerResponse{}, fmt.Errorf("worker process ended: %v", r.out.Err())
	}
	var resp workerResponse
	if err := json.Unmarshal(r.out.Bytes(), &resp); err != nil {
		return resp, err
	}
	if resp.Err != "" {
		return resp, errors.New(resp.Err)
	}
	return resp, nil
}

func (r *remote) Connect(ctx context.Context, start time.Time) (ConnectReport, error) {
	resp, err := r.call(ctx, workerRequest{Op: "connect", Start: start.UnixNano()})
	if resp.Connect == nil {
		return ConnectReport{}, err
	}
	return *resp.Connect, err
}

func (r *remote) Arm(ctx context.Context, p Probe) error {
	_, err := r.call(ctx, workerRequest{Op: "arm", Probe: &p})
	return err
}

func (r *remote) Collect(ctx context.Context, seq, commitStart int64) (CollectReport, error) {
	resp, err := r.call(ctx, workerRequest{Op: "collect", Seq: seq, CommitStart: commitStart})
	if resp.Collect == nil {
		return CollectReport{}, err
	}
	return *resp.Collect, err
}

func (r *remote) Check(ctx context.Context) (CheckReport, error) {
	resp, err := r.call(ctx, workerRequest{Op: "check"})
	if resp.Check == nil {
		return CheckReport{}, err
	}
	return *resp.Check, err
}

func (r *remote) Close() error {
	r.in.Close() // the worker exits when its stdin closes
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		return <-done
	}
}
