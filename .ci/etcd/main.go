// Command etcd runs a three-member etcd cluster on 127.0.0.1 for the tests of
// leanxds, one process per member (go.etcd.io/etcd/server/v3/embed), and a
// small control endpoint through which a test stops (SIGKILL) and restarts one
// member or all of them.
//
//	etcd -dir D                 the cluster: starts the members as child
//	                            processes and serves the control endpoint
//	etcd -dir D -member N       one member, in the foreground (what the
//	                            cluster runs for each member)
//
// Members: N = 0, 1, 2, client URL http://127.0.0.1:(23790+N), peer URL
// http://127.0.0.1:(23800+N), data in D/mN, log in D/mN.log.
//
// Control endpoint (default 127.0.0.1:23799), all methods POST except status:
//
//	/stop?member=N    SIGKILL member N and wait for it to exit
//	/start?member=N   start member N again and wait until its client port accepts
//	                  connections (with the others down it cannot be healthy)
//	/stop             SIGKILL every member
//	/start            start every stopped member and wait until all are healthy
//	GET /status       one line per member: "N running|stopped pid endpoint"
//
// Every answer is 200 with a short text body once the action is done, or 500
// with the reason.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dir := flag.String("dir", "", "data directory (required)")
	member := flag.Int("member", -1, "run this one member in the foreground")
	members := flag.Int("members", 3, "number of members")
	clientBase := flag.Int("client-port", 23790, "client port of member 0 (member N: +N)")
	peerBase := flag.Int("peer-port", 23800, "peer port of member 0 (member N: +N)")
	control := flag.String("control", "127.0.0.1:23799", "address of the control endpoint")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	c := &cluster{dir: *dir, n: *members, clientBase: *clientBase, peerBase: *peerBase}
	if *member >= 0 {
		if err := c.runMember(*member); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := c.run(*control); err != nil {
		log.Fatal(err)
	}
}

type cluster struct {
	dir                  string
	n                    int
	clientBase, peerBase int

	mu    sync.Mutex
	procs []*exec.Cmd // nil: stopped
	done  []chan struct{}
}

func (c *cluster) clientURL(i int) string {
	return "http://127.0.0.1:" + strconv.Itoa(c.clientBase+i)
}

func (c *cluster) peerURL(i int) string { return "http://127.0.0.1:" + strconv.Itoa(c.peerBase+i) }

func (c *cluster) name(i int) string { return "m" + strconv.Itoa(i) }

// runMember runs member i until SIGINT or SIGTERM.
func (c *cluster) runMember(i int) error {
	cfg := embed.NewConfig()
	cfg.Name = c.name(i)
	cfg.Dir = filepath.Join(c.dir, c.name(i))
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(c.dir, c.name(i)+".log")}
	parse := func(s string) []url.URL {
		u, err := url.Parse(s)
		if err != nil {
			panic(err)
		}
		return []url.URL{*u}
	}
	cfg.ListenClientUrls = parse(c.clientURL(i))
	cfg.AdvertiseClientUrls = parse(c.clientURL(i))
	cfg.ListenPeerUrls = parse(c.peerURL(i))
	cfg.AdvertisePeerUrls = parse(c.peerURL(i))
	var initial []string
	for j := 0; j < c.n; j++ {
		initial = append(initial, c.name(j)+"="+c.peerURL(j))
	}
	cfg.InitialCluster = strings.Join(initial, ",")
	cfg.InitialClusterToken = "leanxds-test"
	cfg.ClusterState = embed.ClusterStateFlagNew // ignored once the member has data

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		return nil
	case err := <-e.Err():
		return err
	}
}

// run starts every member and serves the control endpoint until SIGINT or
// SIGTERM, then stops the members.
func (c *cluster) run(control string) error {
	c.procs = make([]*exec.Cmd, c.n)
	c.done = make([]chan struct{}, c.n)
	ln, err := net.Listen("tcp", control)
	if err != nil {
		return err
	}
	for i := 0; i < c.n; i++ {
		if err := c.start(i); err != nil {
			c.stopAll()
			return err
		}
	}
	if err := c.waitHealthy(60 * time.Second); err != nil {
		c.stopAll()
		return err
	}
	srv := &http.Server{Handler: c}
	go srv.Serve(ln)
	fmt.Printf("etcd cluster ready: endpoints %s, control http://%s\n", c.endpoints(), control)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	srv.Close()
	c.stopAll()
	return nil
}

func (c *cluster) endpoints() string {
	var eps []string
	for i := 0; i < c.n; i++ {
		eps = append(eps, "127.0.0.1:"+strconv.Itoa(c.clientBase+i))
	}
	return strings.Join(eps, ",")
}

// start starts member i as a child process; it dies with this process.
func (c *cluster) start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procs[i] != nil {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-dir", c.dir, "-member", strconv.Itoa(i), "-members", strconv.Itoa(c.n),
		"-client-port", strconv.Itoa(c.clientBase), "-peer-port", strconv.Itoa(c.peerBase))
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	c.procs[i], c.done[i] = cmd, done
	return nil
}

// stop kills member i and waits for it to exit.
func (c *cluster) stop(i int) {
	c.mu.Lock()
	cmd, done := c.procs[i], c.done[i]
	c.procs[i], c.done[i] = nil, nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

func (c *cluster) stopAll() {
	for i := 0; i < c.n; i++ {
		c.stop(i)
	}
}

// waitPort waits until member i's client port accepts connections.
func (c *cluster) waitPort(i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	addr := "127.0.0.1:" + strconv.Itoa(c.clientBase+i)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("member %d: %s does not accept connections: %v", i, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHealthy waits until every member answers /health with true.
func (c *cluster) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < c.n; i++ {
		for {
			err := health(client, c.clientURL(i))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("member %d not healthy: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func health(client *http.Client, base string) error {
	resp, err := client.Get(base + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"health":"true"`) {
		return fmt.Errorf("%s/health: %d %s", base, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

func (c *cluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/status" {
		c.mu.Lock()
		for i := 0; i < c.n; i++ {
			if cmd := c.procs[i]; cmd != nil {
				fmt.Fprintf(w, "%d running %d %s\n", i, cmd.Process.Pid, c.clientURL(i))
			} else {
				fmt.Fprintf(w, "%d stopped 0 %s\n", i, c.clientURL(i))
			}
		}
		c.mu.Unlock()
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST /stop, /start (?member=N) or GET /status", http.StatusMethodNotAllowed)
		return
	}
	member := -1
	if m := r.URL.Query().Get("member"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 || n >= c.n {
			http.Error(w, "member: 0.."+strconv.Itoa(c.n-1), http.StatusBadRequest)
			return
		}
		member = n
	}
	var err error
	switch r.URL.Path {
	case "/stop":
		if member >= 0 {
			c.stop(member)
		} else {
			c.stopAll()
		}
	case "/start":
		if member >= 0 {
			if err = c.start(member); err == nil {
				err = c.waitPort(member, 30*time.Second)
			}
		} else {
			for i := 0; i < c.n && err == nil; i++ {
				err = c.start(i)
			}
			if err == nil {
				err = c.waitHealthy(60 * time.Second)
			}
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "ok")
}
