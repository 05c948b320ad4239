#!/usr/bin/env bash
# Starts an S3-compatible server (versitygw, posix backend) on 127.0.0.1 for the
# S3 tests of persist/, which reach it through the same code path as a real AWS
# bucket (the standard credential chain, an endpoint override, path-style).
#
#   source .ci/s3.sh   starts it in the background, exports what the tests need
#                      and stops it when the sourcing shell exits (as .ci/run does)
#   .ci/s3.sh          runs it in the foreground and prints the variables to export
#
# The tests create their own buckets. LEANXDS_S3_PORT overrides the port (7070).
#
# Sourced, it leaves the shell's options as they were (no errexit, nounset or
# pipefail behind in an interactive shell): it checks each step itself and
# returns 1 on failure. Run directly, it uses set -euo pipefail.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
fi

leanxds_s3_port=${LEANXDS_S3_PORT:-7070}
leanxds_s3_module=github.com/versity/versitygw
leanxds_s3_version=v1.8.0

leanxds_s3_bin=$(go env GOBIN) || return 1 2>/dev/null || exit 1
if [ -z "$leanxds_s3_bin" ]; then
  leanxds_s3_bin=$(go env GOPATH) || return 1 2>/dev/null || exit 1
  leanxds_s3_bin=$leanxds_s3_bin/bin
fi
leanxds_s3_bin=$leanxds_s3_bin/versitygw
if ! go version -m "$leanxds_s3_bin" 2>/dev/null | grep -q "mod[[:space:]]*$leanxds_s3_module[[:space:]]*$leanxds_s3_version"; then
  echo "== installing versitygw $leanxds_s3_version"
  go install "$leanxds_s3_module/cmd/versitygw@$leanxds_s3_version" || return 1 2>/dev/null || exit 1
fi

export AWS_ACCESS_KEY_ID=leanxds-test
export AWS_SECRET_ACCESS_KEY=leanxds-test-secret
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export LEANXDS_TEST_S3_ENDPOINT=http://127.0.0.1:$leanxds_s3_port

leanxds_s3_dir=$(mktemp -d "${TMPDIR:-/tmp}/leanxds-s3.XXXXXX") || return 1 2>/dev/null || exit 1
mkdir "$leanxds_s3_dir/data" || return 1 2>/dev/null || exit 1
leanxds_s3_args=(--access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --region "$AWS_REGION"
  --port "127.0.0.1:$leanxds_s3_port" posix "$leanxds_s3_dir/data")

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  echo "export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY AWS_REGION=$AWS_REGION LEANXDS_TEST_S3_ENDPOINT=$LEANXDS_TEST_S3_ENDPOINT"
  trap 'rm -rf "$leanxds_s3_dir"' EXIT
  "$leanxds_s3_bin" "${leanxds_s3_args[@]}"
  exit
fi

"$leanxds_s3_bin" "${leanxds_s3_args[@]}" >"$leanxds_s3_dir/versitygw.log" 2>&1 &
leanxds_s3_pid=$!
# Stopped when the sourcing shell exits, after what an earlier script (the
# other server's) set to run then: a shell has one EXIT trap, so it is chained.
leanxds_s3_prev_trap=$(trap -p EXIT)
leanxds_s3_prev_trap=${leanxds_s3_prev_trap#"trap -- '"}
leanxds_s3_prev_trap=${leanxds_s3_prev_trap%"' EXIT"}
trap -- 'kill "$leanxds_s3_pid" 2>/dev/null || true; wait "$leanxds_s3_pid" 2>/dev/null || true; rm -rf "$leanxds_s3_dir"'"${leanxds_s3_prev_trap:+; $leanxds_s3_prev_trap}" EXIT

# Wait, bounded, until it accepts connections.
for _ in $(seq 1 100); do
  if ! kill -0 "$leanxds_s3_pid" 2>/dev/null; then
    echo "versitygw exited at start (is 127.0.0.1:$leanxds_s3_port taken?):" >&2
    cat "$leanxds_s3_dir/versitygw.log" >&2
    return 1 2>/dev/null || exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$leanxds_s3_port") 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$leanxds_s3_port") 2>/dev/null; then
  echo "versitygw did not answer on 127.0.0.1:$leanxds_s3_port within 10 s:" >&2
  cat "$leanxds_s3_dir/versitygw.log" >&2
  return 1 2>/dev/null || exit 1
fi
echo "== versitygw $leanxds_s3_version serving on $LEANXDS_TEST_S3_ENDPOINT (pid $leanxds_s3_pid, data in $leanxds_s3_dir)"
