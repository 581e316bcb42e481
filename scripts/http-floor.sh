#!/usr/bin/env bash
# The HTTP floor of the local server (docs/performance.md, "Where the time goes"): the server's
# CPU per request when the handler does nothing but read the form and answer a fixed JSON
# object (examples/http_floor.rs: the local server's runtime, allocator and HTTP server,
# gatehouse::server::serve), with and without one stdout line per request (the audit line's
# write). Same wrk settings as scripts/load.sh; the body is the size of an introspection request.
#
# Usage: scripts/http-floor.sh            (LOAD_DURATION, LOAD_CONNECTIONS, LOAD_THREADS as load.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=${LOAD_DURATION:-10}
connections=${LOAD_CONNECTIONS:-16}
threads=${LOAD_THREADS:-$(( $(nproc) < connections ? $(nproc) : connections ))}
command -v wrk >/dev/null || { echo "http-floor.sh: wrk is needed (apt-get install wrk, or run scripts/load.sh once)" >&2; exit 2; }

(cd "$root" && cargo build --release --example http_floor)
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/examples/http_floor"

work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-floor.XXXXXX")
pid=""
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
token=$(python3 -c 'import base64,os; e=lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode(); print(e(os.urandom(36))+"."+e(os.urandom(330))+"."+e(os.urandom(64)))')
cat >"$work/floor.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic cnMxOnNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
wrk.body = "token=$token"
LUA
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
printf '%-22s %8s %12s\n' mode req/s cpu_us/req
for mode in plain audit_line; do
  if [[ $mode == audit_line ]]; then export FLOOR_LINE=1; else unset FLOOR_LINE; fi
  "$bin" >"$work/$mode.out" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do grep -q 'listening on' "$work/$mode.out" && break; sleep 0.1; done
  addr=$(sed -n 's/^listening on //p' "$work/$mode.out")
  [[ -n $addr ]] || { echo "http-floor.sh: the server did not start" >&2; exit 2; }
  c0=$(cpu "$pid")
  out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" -s "$work/floor.lua" "http://$addr/introspect")
  c1=$(cpu "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
  printf '%-22s %8s %12s\n' "$mode" "$rps" "$(python3 -c "print(round(($c1 - $c0) * 1e6 / $tck / $n, 1))")"
done
