#!/usr/bin/env bash
# Starts a three-member etcd cluster on 127.0.0.1 (go.etcd.io/etcd/server/v3/embed
# v3.7.3, the program in .ci/etcd, one process per member) for the tests that need
# etcd: the etcd source, apply, fleet status and the failover tests.
#
#   source .ci/etcd.sh   starts it in the background, exports what the tests need
#                        and stops it when the sourcing shell exits (as .ci/run does)
#   .ci/etcd.sh          runs it in the foreground and prints the variables to export
#
# Exports:
#   LEANXDS_TEST_ETCD_ENDPOINTS  127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792
#   LEANXDS_TEST_ETCD_MEMBERS    the control endpoint, http://127.0.0.1:23799:
#                                POST /stop?member=N (SIGKILL), /start?member=N,
#                                /stop (every member), /start (all, waits until
#                                healthy), GET /status (see .ci/etcd/main.go)
# Client ports 23790-23792, peer ports 23800-23802; data in a temporary directory.
# Tests use their own key prefixes, so they share the cluster.
#
# Sourced, it leaves the shell's options as they were (no errexit, nounset or
# pipefail behind in an interactive shell): it checks each step itself and
# returns 1 on failure. Run directly, it uses set -euo pipefail.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
fi

leanxds_etcd_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || return 1 2>/dev/null || exit 1
leanxds_etcd_bin=$(go env GOBIN) || return 1 2>/dev/null || exit 1
if [ -z "$leanxds_etcd_bin" ]; then
  leanxds_etcd_bin=$(go env GOPATH) || return 1 2>/dev/null || exit 1
  leanxds_etcd_bin=$leanxds_etcd_bin/bin
fi
mkdir -p "$leanxds_etcd_bin" || return 1 2>/dev/null || exit 1
leanxds_etcd_bin=$leanxds_etcd_bin/leanxds-ci-etcd
echo "== building the etcd test cluster (.ci/etcd, go.etcd.io/etcd/server/v3 v3.7.3)"
(cd "$leanxds_etcd_root/etcd" && go build -o "$leanxds_etcd_bin" .) || return 1 2>/dev/null || exit 1

export LEANXDS_TEST_ETCD_ENDPOINTS=127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792
export LEANXDS_TEST_ETCD_MEMBERS=http://127.0.0.1:23799

leanxds_etcd_dir=$(mktemp -d "${TMPDIR:-/tmp}/leanxds-etcd.XXXXXX") || return 1 2>/dev/null || exit 1
leanxds_etcd_args=(-dir "$leanxds_etcd_dir" -client-port 23790 -peer-port 23800 -control 127.0.0.1:23799)

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  echo "export LEANXDS_TEST_ETCD_ENDPOINTS=$LEANXDS_TEST_ETCD_ENDPOINTS LEANXDS_TEST_ETCD_MEMBERS=$LEANXDS_TEST_ETCD_MEMBERS"
  trap 'rm -rf "$leanxds_etcd_dir"' EXIT
  "$leanxds_etcd_bin" "${leanxds_etcd_args[@]}"
  exit
fi

"$leanxds_etcd_bin" "${leanxds_etcd_args[@]}" >"$leanxds_etcd_dir/cluster.log" 2>&1 &
leanxds_etcd_pid=$!
# Stopped when the sourcing shell exits, after what an earlier script (the
# other server's) set to run then: a shell has one EXIT trap, so it is chained.
leanxds_etcd_prev_trap=$(trap -p EXIT)
leanxds_etcd_prev_trap=${leanxds_etcd_prev_trap#"trap -- '"}
leanxds_etcd_prev_trap=${leanxds_etcd_prev_trap%"' EXIT"}
trap -- 'kill "$leanxds_etcd_pid" 2>/dev/null || true; wait "$leanxds_etcd_pid" 2>/dev/null || true; rm -rf "$leanxds_etcd_dir"'"${leanxds_etcd_prev_trap:+; $leanxds_etcd_prev_trap}" EXIT

# Wait, bounded, until the cluster is healthy (the program prints a line then).
for _ in $(seq 1 600); do
  if ! kill -0 "$leanxds_etcd_pid" 2>/dev/null; then
    echo "the etcd cluster exited at start (are ports 23790-23802, 23799 taken?):" >&2
    cat "$leanxds_etcd_dir"/*.log >&2
    return 1 2>/dev/null || exit 1
  fi
  if grep -q '^etcd cluster ready' "$leanxds_etcd_dir/cluster.log"; then
    break
  fi
  sleep 0.1
done
if ! grep -q '^etcd cluster ready' "$leanxds_etcd_dir/cluster.log"; then
  echo "the etcd cluster was not healthy within 60 s:" >&2
  cat "$leanxds_etcd_dir"/*.log >&2
  return 1 2>/dev/null || exit 1
fi
echo "== etcd cluster on $LEANXDS_TEST_ETCD_ENDPOINTS (pid $leanxds_etcd_pid, control $LEANXDS_TEST_ETCD_MEMBERS, data in $leanxds_etcd_dir)"
