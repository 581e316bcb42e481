#!/usr/bin/env bash
# Load test of the local all-in-one server (`gatehouse`, embedded store, local ES256 key).
#
# Builds the release server, starts it on a free loopback port with a fresh temporary data
# directory, registers a client-credentials client through the admin API, gets one access
# token, then drives two bounded loads with wrk, one after the other:
#   1. POST /token       grant_type=client_credentials, HTTP Basic client authentication
#   2. POST /introspect  of the active token, same client
# and prints for each: requests/second, latency p50/p90/p99, error count, and the server's
# CPU time per request (utime+stime of the server process from /proc/<pid>/stat).
#
# Usage:
#   scripts/load.sh
#   LOAD_DURATION=30 LOAD_CONNECTIONS=64 scripts/load.sh
#
# Environment (all optional):
#   LOAD_DURATION     seconds of load per scenario                   (default 10)
#   LOAD_CONNECTIONS  concurrent keep-alive connections              (default 16)
#   LOAD_THREADS      wrk threads                    (default min(nproc, connections))
#   GATEHOUSE_LOG     the server's log filter                        (default info)
#
# Traffic goes only to 127.0.0.1. wrk is installed with apt-get when missing (root, or sudo).
# Needs: cargo, curl, python3, base64, getconf, Linux /proc. The server's output (one audit
# line per request) goes to a log in the temporary directory; its tail is shown on failure.
# The server is stopped and the temporary directory removed on exit, also on Ctrl-C.
# Exit status: 0 when every request got a 2xx response; 1 when any request failed (non-2xx
# status or socket error/timeout); 2 on a usage or set-up error.
#
# Note: wrk runs on the same machine and takes CPU from the server; requests/second is for
# this machine as a whole, CPU per request is the server's alone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=${LOAD_DURATION:-10}
connections=${LOAD_CONNECTIONS:-16}
ncpu=$(nproc)
threads=${LOAD_THREADS:-$((ncpu < connections ? ncpu : connections))}

die() { echo "load.sh: $*" >&2; exit 2; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
is_count "$duration" || die "LOAD_DURATION must be a positive number of seconds, got '$duration'"
is_count "$connections" || die "LOAD_CONNECTIONS must be a positive integer, got '$connections'"
is_count "$threads" || die "LOAD_THREADS must be a positive integer, got '$threads'"
((threads <= connections)) || die "LOAD_THREADS ($threads) must not exceed LOAD_CONNECTIONS ($connections)"
for tool in cargo curl python3 base64 getconf; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -r /proc/self/stat ]] || die "/proc is required (Linux) to measure the server's CPU time"

# --- wrk ---------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  echo "== installing wrk (apt-get)"
  command -v apt-get >/dev/null || die "wrk is missing and apt-get is not available: install wrk"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "wrk is missing; install it (apt-get install wrk) or run as root"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y -q wrk >/dev/null; then
    "${sudo[@]}" apt-get update -q >/dev/null
    "${sudo[@]}" apt-get install -y -q wrk >/dev/null
  fi
  command -v wrk >/dev/null || die "wrk could not be installed"
fi

# --- build -------------------------------------------------------------------------------
echo "== building the release server"
(cd "$root" && cargo build --release --bin gatehouse)
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/gatehouse"
[[ -x $bin ]] || die "no server binary at $bin"

# --- start the server --------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-load.XXXXXX")
data_dir="$work/data"
server_log="$work/server.log"
server_pid=""

cleanup() {
  local rc=$?
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true # graceful shutdown (the server waits for Ctrl-C)
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -s $server_log ]]; then
    echo "-- last lines of the server log:" >&2
    tail -n 20 "$server_log" >&2 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"

# A clean environment: nothing from the caller's GATEHOUSE_* or AWS settings leaks in, and
# the admin token is generated into the data directory.
env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
  GATEHOUSE_ADDR="127.0.0.1:$port" GATEHOUSE_ISSUER="$base" GATEHOUSE_DATA_DIR="$data_dir" \
  GATEHOUSE_STORE=embedded GATEHOUSE_SIGNER=local GATEHOUSE_TENANT=load \
  GATEHOUSE_LOG="${GATEHOUSE_LOG:-info}" \
  "$bin" >"$server_log" 2>&1 &
server_pid=$!

echo "== starting the server on $base (pid $server_pid, data in $data_dir)"
for i in $(seq 1 100); do
  kill -0 "$server_pid" 2>/dev/null || die "the server exited during start-up"
  if curl -sf -o /dev/null "$base/.well-known/oauth-authorization-server"; then break; fi
  ((i < 100)) || die "the server did not answer on $base"
  sleep 0.1
done
admin_token=$(<"$data_dir/admin-token")

# --- a client and a token ----------------------------------------------------------------
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

client=$(curl -sS --fail-with-body -X POST "$base/admin/clients" \
  -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
  -d '{"client_name":"load test","grant_types":["client_credentials"],"scope":"read write"}') ||
  die "client registration failed: $client"
client_id=$(json_field client_id <<<"$client")
client_secret=$(json_field client_secret <<<"$client")
# RFC 6749 §2.3.1 form-encodes both parts; generated ids and secrets are base64url, unchanged.
basic="Basic $(printf '%s:%s' "$client_id" "$client_secret" | base64 | tr -d '\n')"

resp=$(curl -sS --fail-with-body -X POST "$base/token" -H "Authorization: $basic" \
  -H 'Content-Type: application/x-www-form-urlencoded' -d 'grant_type=client_credentials') ||
  die "token request failed: $resp"
access_token=$(json_field access_token <<<"$resp")

resp=$(curl -sS --fail-with-body -X POST "$base/introspect" -H "Authorization: $basic" \
  -H 'Content-Type: application/x-www-form-urlencoded' -d "token=$access_token") ||
  die "introspection failed: $resp"
[[ $(json_field active <<<"$resp") == True ]] || die "the fresh token is not active: $resp"

# --- load --------------------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the server (all threads), in clock ticks
  local stat
  stat=$(<"/proc/$server_pid/stat")
  stat=${stat##*) } # fields after "pid (comm) ": state is field 1, utime 12, stime 13
  awk '{ print $12 + $13 }' <<<"$stat"
}

# wrk script: POST with a form body and Basic auth; counts non-2xx responses per thread and
# prints one machine-readable RESULT line when done.
write_lua() { # file path body
  cat >"$1" <<EOF
wrk.method = "POST"
wrk.path = "$2"
wrk.body = "$3"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "$basic"

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local non2xx_total = 0
  for _, t in ipairs(threads) do non2xx_total = non2xx_total + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), non2xx_total, e.connect + e.read + e.write + e.timeout))
end
EOF
}

failed=0
summary=()
run() { # name path body
  local name=$1 lua="$work/$1.lua" out="$work/$1.out" before after
  write_lua "$lua" "$2" "$3"
  echo
  echo "== $name: POST $2, ${duration}s, $connections connections, $threads threads"
  before=$(cpu_ticks)
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$lua" "$base" >"$out" 2>&1 ||
    { cat "$out" >&2; die "wrk failed"; }
  after=$(cpu_ticks)
  grep -v '^RESULT ' "$out" | sed 's/^/  /'
  local result
  result=$(grep '^RESULT ' "$out") || die "wrk printed no RESULT line"
  local line
  line=$(awk -v r="$result" -v ticks=$((after - before)) -v hz="$clk_tck" -v name="$name" 'BEGIN {
    n = split(r, kv, " "); for (i = 2; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    errors = v["non2xx"] + v["socket_errors"]
    rps = v["duration_us"] > 0 ? v["requests"] / (v["duration_us"] / 1e6) : 0
    cpu = v["requests"] > 0 ? ticks * 1e6 / hz / v["requests"] : 0
    printf "%-12s %10.0f %9.2f %9.2f %9.2f %9d %10d %12.0f\n", name, rps, v["p50_us"] / 1000,
      v["p90_us"] / 1000, v["p99_us"] / 1000, v["requests"], errors, cpu
  }')
  summary+=("$line")
  local non2xx socket
  non2xx=$(sed -E 's/.* non2xx=([0-9]+).*/\1/' <<<"$result")
  socket=$(sed -E 's/.* socket_errors=([0-9]+).*/\1/' <<<"$result")
  if ((non2xx > 0 || socket > 0)); then
    echo "  !! $name: $non2xx non-2xx responses, $socket socket errors/timeouts" >&2
    failed=1
  fi
}

run token /token "grant_type=client_credentials"
run introspect /introspect "token=$access_token&token_type_hint=access_token"

echo
echo "== summary ($(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
printf "%-12s %10s %9s %9s %9s %9s %10s %12s\n" scenario req/s p50_ms p90_ms p99_ms requests errors cpu_us/req
printf '%s\n' "${summary[@]}"
if ((failed)); then
  echo "load.sh: some requests failed" >&2
  exit 1
fi
