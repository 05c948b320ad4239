package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/leanxds/leanxds/source"
)

// The Dockerfile, the Kubernetes manifests and the systemd unit run the binary:
// every subcommand, flag, LEANXDS_* variable and admin path they use is checked
// against the binary here, so that they cannot rot when a flag is renamed.

// repoRoot is the repository's root, from this package's directory.
const repoRoot = "../.."

// pendingFlags are serve flags a deployment file uses that the binary may not
// have yet: a command line using one is checked for its other flags only,
// until the flag exists; from then on it is checked whole. Empty: every flag
// the files use exists.
var pendingFlags []string

// credentialEnv are LEANXDS_* variables the binary reads that are not flags:
// credentials, kept off command lines. Each is checked to be read by the
// binary's sources once it is; pendingEnv may not be yet.
var (
	credentialEnv = []string{"LEANXDS_ETCD_USERNAME", "LEANXDS_ETCD_PASSWORD"}
	pendingEnv    []string
)

// invocation is how a deployment file runs the binary: its arguments (the
// subcommand first) and its environment; secret values are "secret".
type invocation struct {
	where string
	args  []string
	env   map[string]string
}

// checkInvocation checks that inv's subcommand exists and, for serve, that
// its flags and variables are serve's and make a valid command line. It
// returns serve's options, or nil when a pending flag kept the line from
// being parsed whole.
func checkInvocation(t *testing.T, inv invocation) *serveOptions {
	t.Helper()
	require.NotEmpty(t, inv.args, inv.where)
	name := inv.args[0]
	require.Contains(t, commands, name, "%s: subcommand %q", inv.where, name)
	if name != "serve" {
		assert.Empty(t, inv.env, "%s: only serve reads LEANXDS_* variables", inv.where)
		return nil
	}
	c, o := serveCommand(io.Discard)
	args, skipped := withoutPending(t, c, inv)
	env := map[string]string{}
	for k, v := range inv.env {
		if slices.Contains(credentialEnv, k) {
			checkCredentialEnv(t, inv.where, k)
			continue
		}
		flagName := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, envPrefix)), "_", "-")
		if !assert.True(t, strings.HasPrefix(k, envPrefix), "%s: %s is not a LEANXDS_ variable", inv.where, k) {
			continue
		}
		if c.fs.Lookup(flagName) == nil && slices.Contains(pendingFlags, flagName) {
			skipped = append(skipped, "$"+k)
			continue
		}
		if assert.NotNil(t, c.fs.Lookup(flagName), "%s: %s sets no flag of serve", inv.where, k) {
			env[k] = v
		}
	}
	err := c.parse(args[1:], func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err, "%s: %q", inv.where, inv.args)
	assert.Zero(t, c.fs.NArg(), "%s: arguments after the flags: %q", inv.where, c.fs.Args())
	if len(skipped) > 0 {
		t.Logf("%s: %v not in the binary yet: checked once they are", inv.where, skipped)
		return nil
	}
	require.NoError(t, o.check(), "%s: %q", inv.where, inv.args)
	return o
}

// withoutPending returns inv's arguments without the pending flags serve does
// not have yet (and their values), and the flags left out.
func withoutPending(t *testing.T, c *command, inv invocation) (args, skipped []string) {
	t.Helper()
	args = []string{inv.args[0]}
	for i := 1; i < len(inv.args); i++ {
		a := inv.args[i]
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && c.fs.Lookup(name) == nil && slices.Contains(pendingFlags, name) {
			skipped = append(skipped, "--"+name)
			if !hasValue {
				i++ // every pending flag takes a value
			}
			continue
		}
		args = append(args, a)
	}
	return args, skipped
}

// checkCredentialEnv checks that a credential variable is read by the binary's
// sources, unless it is pending.
func checkCredentialEnv(t *testing.T, where, name string) {
	t.Helper()
	found := false
	for _, dir := range []string{".", filepath.Join(repoRoot, "source")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			found = found || bytes.Contains(b, []byte(`"`+name+`"`)) || bytes.Contains(b, []byte(`"`+strings.TrimPrefix(name, envPrefix)+`"`))
		}
	}
	if !found && slices.Contains(pendingEnv, name) {
		t.Logf("%s: %s not read by the binary yet: checked once it is", where, name)
		return
	}
	assert.True(t, found, "%s: the binary reads no variable %s", where, name)
}

// checkAdminPaths checks that the admin server of serve answers each path
// (any status but 404 and 405: /readyz is 503 until a config is loaded).
func checkAdminPaths(t *testing.T, where string, paths []string) {
	t.Helper()
	c, o := serveCommand(io.Discard)
	require.NoError(t, c.parse([]string{"--config", t.TempDir()}, func(string) (string, bool) { return "", false }))
	s, err := newServer(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(s.admin.Shutdown)
	for _, p := range paths {
		rec := httptest.NewRecorder()
		s.admin.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		assert.NotContains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, rec.Code, "%s: GET %s", where, p)
	}
}

// portOfAddr returns the port of a host:port flag value.
func portOfAddr(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	n, err := strconv.Atoi(p)
	require.NoError(t, err, addr)
	return n
}

// dockerfile is what the test reads of a Dockerfile: its instructions, with
// continuation lines joined, in order.
func dockerfile(t *testing.T, path string) [][2]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out [][2]string
	var cur string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur += rest + " "
			continue
		}
		cur += line
		instr, args, _ := strings.Cut(cur, " ")
		out = append(out, [2]string{strings.ToUpper(instr), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

func TestDeployDockerfile(t *testing.T) {
	where := "Dockerfile"
	var final, entrypoint, cmd []string
	env := map[string]string{}
	var stages, user, expose string
	var build string
	for _, in := range dockerfile(t, filepath.Join(repoRoot, "Dockerfile")) {
		switch in[0] {
		case "FROM":
			stages += in[1] + "\n"
			final = strings.Fields(in[1])
			env, user = map[string]string{}, ""
		case "ENV":
			for _, kv := range strings.Fields(in[1]) {
				k, v, ok := strings.Cut(kv, "=")
				require.True(t, ok, "ENV %s: want KEY=VALUE", kv)
				env[k] = v
			}
		case "USER":
			user = in[1]
		case "EXPOSE":
			expose = in[1]
		case "ENTRYPOINT":
			require.NoError(t, json.Unmarshal([]byte(in[1]), &entrypoint), "ENTRYPOINT must be a JSON array")
		case "CMD":
			require.NoError(t, json.Unmarshal([]byte(in[1]), &cmd), "CMD must be a JSON array")
		case "RUN":
			if strings.Contains(in[1], "go build") {
				build = in[1]
			}
		}
	}
	assert.Equal(t, 2, strings.Count(stages, "\n"), "multi-stage: a build stage and the image")
	assert.Regexp(t, `^(gcr\.io/distroless/static\S*|scratch)$`, final[0], "a distroless static or scratch base")
	assert.Contains(t, build, "CGO_ENABLED=0", "a static binary")
	assert.Contains(t, build, "./cmd/leanxds")
	assert.NotEmpty(t, user, "a USER")
	uid, _, _ := strings.Cut(user, ":")
	assert.NotContains(t, []string{"0", "root"}, uid, "not root")
	require.Equal(t, []string{"/leanxds"}, entrypoint)
	o := checkInvocation(t, invocation{where: where, args: cmd, env: env})
	require.NotNil(t, o)
	assert.ElementsMatch(t, []string{strconv.Itoa(portOfAddr(t, o.listen)), strconv.Itoa(portOfAddr(t, o.admin))}, strings.Fields(expose),
		"EXPOSE names the xDS and admin ports")
	// The config directory is mounted, not baked in.
	assert.NotRegexp(t, `(?m)^COPY .*(examples|/etc/leanxds)`, stages)
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	assert.NotRegexp(t, `(?m)^COPY[^\n]*examples`, string(b))

	// `docker run IMAGE version` works as the comment says.
	checkInvocation(t, invocation{where: where + " (comment)", args: []string{"version"}})
}

// k8sObject is a Kubernetes object as the test reads it.
type k8sObject = map[string]any

// at returns the value at a path of keys (strings) and indexes (ints), or nil.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func items(v any) []any { l, _ := v.([]any); return l }

func readManifests(t *testing.T, path string) []k8sObject {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(bufio.NewReader(f))
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if err == io.EOF {
			break
		}
		require.NoError(t, err, path)
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

func TestDeployKubernetes(t *testing.T) {
	for _, name := range []string{"kubernetes/leanxds.yaml", "kubernetes/etcd/leanxds.yaml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(repoRoot, "deploy", name)
			byKind := map[string][]k8sObject{}
			for _, o := range readManifests(t, path) {
				byKind[fmt.Sprint(o["kind"])] = append(byKind[fmt.Sprint(o["kind"])], o)
			}
			require.Len(t, byKind["Deployment"], 1, "one Deployment")
			require.Len(t, byKind["PodDisruptionBudget"], 1, "a PodDisruptionBudget")
			require.Len(t, byKind["Service"], 2, "a Service for xDS and one for admin")
			d := byKind["Deployment"][0]
			replicas, _ := at(d, "spec", "replicas").(int)
			assert.GreaterOrEqual(t, replicas, 2, "several replicas")
			podLabels := at(d, "spec", "template", "metadata", "labels")
			require.NotNil(t, podLabels)
			assert.Equal(t, at(d, "spec", "selector", "matchLabels"), podLabels)
			assert.Equal(t, podLabels, at(byKind["PodDisruptionBudget"][0], "spec", "selector", "matchLabels"), "the PodDisruptionBudget selects the pods")
			assert.Equal(t, true, at(d, "spec", "template", "spec", "securityContext", "runAsNonRoot"))

			containers := items(at(d, "spec", "template", "spec", "containers"))
			require.Len(t, containers, 1)
			c := containers[0]
			inv := invocation{where: name, env: map[string]string{}}
			for _, a := range items(at(c, "command")) {
				inv.args = append(inv.args, fmt.Sprint(a))
			}
			require.Empty(t, inv.args, "the image's entrypoint runs the binary: args, not command")
			for _, a := range items(at(c, "args")) {
				inv.args = append(inv.args, fmt.Sprint(a))
			}
			for _, e := range items(at(c, "env")) {
				v := fmt.Sprint(at(e, "value"))
				if at(e, "valueFrom") != nil {
					v = "secret"
				}
				inv.env[fmt.Sprint(at(e, "name"))] = v
			}
			o := checkInvocation(t, inv)

			ports := map[string]int{}
			for _, p := range items(at(c, "ports")) {
				ports[fmt.Sprint(at(p, "name"))], _ = at(p, "containerPort").(int)
			}
			portNamed := func(v any) int {
				if n, ok := v.(int); ok {
					return n
				}
				n, ok := ports[fmt.Sprint(v)]
				assert.True(t, ok, "%s: no container port named %v", name, v)
				return n
			}
			// The pod is given the time to drain before it is killed.
			grace, _ := at(d, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
			drain, err := time.ParseDuration(flagValue(inv.args, "drain-timeout"))
			require.NoError(t, err, "--drain-timeout")
			assert.Greater(t, time.Duration(grace)*time.Second, drain, "terminationGracePeriodSeconds exceeds --drain-timeout")

			var listen, adminPort int
			if o != nil {
				listen, adminPort = portOfAddr(t, o.listen), portOfAddr(t, o.admin)
			} else {
				// Parsed without the pending flags: the ports are still checked.
				listen, adminPort = portFlag(t, inv.args, "listen"), portFlag(t, inv.args, "admin")
			}
			assert.Equal(t, listen, ports["xds"], "the xds port is --listen's")
			assert.Equal(t, adminPort, ports["admin"], "the admin port is --admin's")

			var paths []string
			for probe, want := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
				assert.Equal(t, want, at(c, probe, "httpGet", "path"), probe)
				assert.Equal(t, adminPort, portNamed(at(c, probe, "httpGet", "port")), "%s on the admin port", probe)
				paths = append(paths, fmt.Sprint(at(c, probe, "httpGet", "path")))
			}
			annotations, _ := at(d, "spec", "template", "metadata", "annotations").(map[string]any)
			if p, ok := annotations["prometheus.io/path"]; ok {
				paths = append(paths, fmt.Sprint(p))
				assert.Equal(t, strconv.Itoa(adminPort), annotations["prometheus.io/port"])
			}
			checkAdminPaths(t, name, paths)

			servicePorts := map[int]bool{}
			for _, s := range byKind["Service"] {
				assert.Equal(t, podLabels, at(s, "spec", "selector"), "%v selects the pods", at(s, "metadata", "name"))
				for _, p := range items(at(s, "spec", "ports")) {
					servicePorts[portNamed(at(p, "targetPort"))] = true
				}
			}
			assert.Equal(t, map[int]bool{listen: true, adminPort: true}, servicePorts, "the Services expose xDS and admin")

			// Every volume a container mounts exists; the config directory
			// (--config) is a mounted ConfigMap, valid as serve reads it.
			volumes := map[string]any{}
			for _, v := range items(at(d, "spec", "template", "spec", "volumes")) {
				volumes[fmt.Sprint(at(v, "name"))] = v
			}
			mounts := map[string]any{}
			for _, m := range items(at(c, "volumeMounts")) {
				require.Contains(t, volumes, at(m, "name"))
				mounts[fmt.Sprint(at(m, "mountPath"))] = volumes[fmt.Sprint(at(m, "name"))]
			}
			for _, flagName := range []string{"config", "etcd-ca", "etcd-cert", "etcd-key", "snapshot"} {
				if v := flagValue(inv.args, flagName); v != "" {
					dir := v
					if flagName != "config" {
						dir = filepath.Dir(v)
					}
					assert.Contains(t, mounts, dir, "--%s %s is on a mounted volume", flagName, v)
				}
			}
			if dir := flagValue(inv.args, "config"); dir != "" {
				cmName := at(mounts[dir], "configMap", "name")
				var found bool
				for _, cm := range byKind["ConfigMap"] {
					if at(cm, "metadata", "name") != cmName {
						continue
					}
					found = true
					tmp := t.TempDir()
					for k, v := range at(cm, "data").(map[string]any) {
						require.NoError(t, os.WriteFile(filepath.Join(tmp, k), []byte(fmt.Sprint(v)), 0o644))
					}
					sum, _, err := source.CheckDir(tmp, source.DirOptions{})
					require.NoError(t, err, "the ConfigMap's config")
					assert.NotZero(t, sum.Resources())
				}
				assert.True(t, found, "ConfigMap %v is in the file", cmName)
			}
		})
	}
}

// flagValue returns the value of --name in args ("--name=v" or "--name v").
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// portFlag returns the port of an address flag in args, or of its default.
func portFlag(t *testing.T, args []string, name string) int {
	t.Helper()
	v := flagValue(args, name)
	if v == "" {
		c, _ := serveCommand(io.Discard)
		v = c.fs.Lookup(name).DefValue
	}
	return portOfAddr(t, v)
}

// systemdUnit reads a unit file: each key's values, in order, with
// continuation lines joined.
func systemdUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	unit := map[string][]string{}
	var cur string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if cur == "" && (line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[")) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur += rest + " "
			continue
		}
		cur += line
		k, v, ok := strings.Cut(cur, "=")
		require.True(t, ok, "%s: %q", path, cur)
		unit[k] = append(unit[k], strings.TrimSpace(v))
		cur = ""
	}
	return unit
}

func TestDeploySystemd(t *testing.T) {
	where := "leanxds.service"
	unit := systemdUnit(t, filepath.Join(repoRoot, "deploy", "systemd", "leanxds.service"))
	env := map[string]string{}
	for _, e := range unit["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, ok := strings.Cut(kv, "=")
			require.True(t, ok, kv)
			env[k] = v
		}
	}
	binary := regexp.MustCompile(`^/\S+/leanxds$`)
	for _, key := range []string{"ExecStart", "ExecReload"} {
		require.Len(t, unit[key], 1, key)
		args := strings.Fields(unit[key][0])
		require.Regexp(t, binary, args[0], key)
		inv := invocation{where: where + " " + key, args: args[1:]}
		if args[1] == "serve" {
			inv.env = env
		}
		o := checkInvocation(t, inv)
		if key == "ExecStart" {
			require.NotNil(t, o)
			// What the process writes is in its state directory, the one
			// place ProtectSystem=strict leaves writable.
			assert.True(t, strings.HasPrefix(o.snapshot, "/var/lib/"+unit["StateDirectory"][0]+"/"), o.snapshot)
			stop, err := time.ParseDuration(unit["TimeoutStopSec"][0])
			require.NoError(t, err, "TimeoutStopSec")
			assert.Greater(t, stop, o.drainTimeout, "TimeoutStopSec exceeds --drain-timeout")
		}
	}
	for k, v := range map[string]string{
		"ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "",
	} {
		assert.Equal(t, []string{v}, unit[k], k)
	}
	assert.True(t, slices.Equal(unit["DynamicUser"], []string{"yes"}) || len(unit["User"]) == 1, "DynamicUser or a User")
}
