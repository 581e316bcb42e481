#!/usr/bin/env bash
# Load test of the local all-in-one server (`gatehouse`, embedded store, local ES256 key).
#
# Builds the release server (and the code fixture, examples/load_fixture.rs), starts the server
# on a free loopback port with a fresh temporary data directory, registers two clients and a user
# through the admin API, then drives six bounded loads with wrk (scripts/load.lua), one after the
# other:
#   1. token               POST /token        client_credentials, HTTP Basic
#   2. introspect_jwt      POST /introspect   an active access token (JWT)
#   3. introspect_refresh  POST /introspect   an active refresh token (opaque)
#   4. validate            GET  /validate     Authorization: Bearer <access token>
#   5. code_exchange       POST /token        authorization_code + PKCE, each code used once
#                          (LOAD_CODES codes minted into the store beforehand by the fixture:
#                          the browser sign-in would measure Argon2id, not the exchange)
#   6. refresh             POST /token        refresh_token, each response's successor reused
# and prints for each: requests/second, latency p50/p90/p99, error count, and the server's
# CPU time per request (utime+stime of the server process from /proc/<pid>/stat); then the
# server's peak resident memory over the whole run.
#
# Usage:
#   scripts/load.sh
#   LOAD_DURATION=30 LOAD_CONNECTIONS=64 scripts/load.sh
#   LOAD_SCENARIOS="token refresh" scripts/load.sh
#
# Environment (all optional):
#   LOAD_DURATION     seconds of load per scenario                   (default 10)
#   LOAD_CONNECTIONS  concurrent keep-alive connections              (default 16)
#   LOAD_THREADS      wrk threads                    (default min(nproc, connections))
#   LOAD_CODES        codes minted for code_exchange                 (default 20000)
#   LOAD_SCENARIOS    which scenarios, in order                      (default all six)
#   GATEHOUSE_LOG     the server's log filter                        (default info)
#   LOAD_PROFILE      the Cargo profile of the server build          (default release;
#                     `profiling` keeps symbols, for `perf record -p <server pid>`)
#   LOAD_BIN          a server binary to run instead of the build's: e.g. a copy of an older
#                     build, for an interleaved A/B of two versions  (default: the build's)
#
# Traffic goes only to 127.0.0.1. wrk is installed with apt-get when missing (root, or sudo).
# Needs: cargo, curl, python3, base64, getconf, Linux /proc. The server's output (one audit
# line per request) goes to a log in the temporary directory; its tail is shown on failure.
# The server is stopped and the temporary directory removed on exit, also on Ctrl-C.
# Exit status: 0 when every request got a 2xx response; 1 when any request failed (non-2xx
# status or socket error/timeout); 2 on a usage or set-up error.
#
# Note: wrk runs on the same machine and takes CPU from the server; requests/second is for
# this machine as a whole, CPU per request is the server's alone. code_exchange runs until its
# codes are spent (its requests/second are over that window), so it may end before
# LOAD_DURATION.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=${LOAD_DURATION:-10}
connections=${LOAD_CONNECTIONS:-16}
codes=${LOAD_CODES:-20000}
scenarios=${LOAD_SCENARIOS:-token introspect_jwt introspect_refresh validate code_exchange refresh}
profile=${LOAD_PROFILE:-release}

die() { echo "load.sh: $*" >&2; exit 2; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
is_count "$duration" || die "LOAD_DURATION must be a positive number of seconds, got '$duration'"
is_count "$connections" || die "LOAD_CONNECTIONS must be a positive integer, got '$connections'"
ncpu=$(nproc)
threads=${LOAD_THREADS:-$((ncpu < connections ? ncpu : connections))}
[[ $profile =~ ^[a-z][a-z0-9_-]*$ ]] || die "LOAD_PROFILE must name a Cargo profile, got '$profile'"
is_count "$codes" || die "LOAD_CODES must be a positive integer, got '$codes'"
for sc in $scenarios; do
  case $sc in token | introspect_jwt | introspect_refresh | validate | code_exchange | refresh) ;;
    *) die "unknown scenario '$sc' in LOAD_SCENARIOS" ;;
  esac
done
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
echo "== building the $profile server and the code fixture"
(cd "$root" && cargo build --profile "$profile" --bin gatehouse --example load_fixture)
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="${LOAD_BIN:-$target_dir/$profile/gatehouse}"
fixture="$target_dir/$profile/examples/load_fixture"
[[ -x $bin ]] || die "no server binary at $bin"
[[ -x $fixture ]] || die "no fixture binary at $fixture"

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

# --- clients, a user, tokens, codes ----------------------------------------------------
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
admin() { # method path json
  curl -sS --fail-with-body -X "$1" "$base$2" -H "Authorization: Bearer $admin_token" \
    -H 'Content-Type: application/json' -d "$3"
}
# RFC 6749 §2.3.1 form-encodes both parts; generated ids and secrets are base64url, unchanged.
basic_of() { printf 'Basic %s' "$(printf '%s:%s' "$(json_field client_id <<<"$1")" "$(json_field client_secret <<<"$1")" | base64 | tr -d '\n')"; }
form_post() { # path authorization body
  curl -sS --fail-with-body -X POST "$base$1" -H "Authorization: $2" \
    -H 'Content-Type: application/x-www-form-urlencoded' -d "$3"
}

client=$(admin POST /admin/clients \
  '{"client_name":"load test","grant_types":["client_credentials"],"scope":"read write"}') ||
  die "client registration failed: $client"
basic=$(basic_of "$client")
redirect_uri=http://127.0.0.1/cb
code_client=$(admin POST /admin/clients "{\"client_name\":\"load test (code flow)\",
  \"grant_types\":[\"authorization_code\",\"refresh_token\"],\"redirect_uris\":[\"$redirect_uri\"],
  \"scope\":\"read write\"}") || die "client registration failed: $code_client"
code_client_id=$(json_field client_id <<<"$code_client")
code_basic=$(basic_of "$code_client")
resp=$(admin POST /admin/users '{"username":"load-user","password":"load test passphrase 0123"}') ||
  die "user creation failed: $resp"

resp=$(form_post /token "$basic" grant_type=client_credentials) || die "token request failed: $resp"
access_token=$(json_field access_token <<<"$resp")
resp=$(form_post /introspect "$basic" "token=$access_token") || die "introspection failed: $resp"
[[ $(json_field active <<<"$resp") == True ]] || die "the fresh token is not active: $resp"

# PKCE (RFC 7636): one verifier for every minted code; the fixture stores its S256 challenge.
verifier=load-test-verifier-0123456789abcdefghijklmnopqrstuvwxyz
# The fixture decides the grant as the server does: with the server's issuer (its default
# audience), or the codes' audience is a resource server the server does not know.
mint() { GATEHOUSE_ISSUER="$base" "$fixture" "$data_dir" "$code_client_id" "$redirect_uri" load-user "$1" "$verifier"; }
exchange_body() { echo "grant_type=authorization_code&redirect_uri=$redirect_uri&code_verifier=$verifier&code=$1"; }
# Refresh tokens to start the refresh chains with (one per connection, plus one per thread to
# spare) and one more for introspect_refresh: each from a real code exchange.
: >"$work/refresh.txt"
for code in $(mint $((connections + threads + 1))); do
  resp=$(form_post /token "$code_basic" "$(exchange_body "$code")") || die "code exchange failed: $resp"
  json_field refresh_token <<<"$resp" >>"$work/refresh.txt"
done
refresh_token=$(tail -n 1 "$work/refresh.txt")
sed -i '$d' "$work/refresh.txt"
resp=$(form_post /introspect "$code_basic" "token=$refresh_token&token_type_hint=refresh_token") ||
  die "introspection failed: $resp"
[[ $(json_field active <<<"$resp") == True ]] || die "the fresh refresh token is not active: $resp"

# --- load --------------------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the server (all threads), in clock ticks
  local stat
  stat=$(<"/proc/$server_pid/stat")
  stat=${stat##*) } # fields after "pid (comm) ": state is field 1, utime 12, stime 13
  awk '{ print $12 + $13 }' <<<"$stat"
}

failed=0
summary=()
run() { # name method path authorization mode [mode arguments...]
  local name=$1 method=$2 path=$3 auth=$4 mode=$5 out="$work/$1.out" before after
  shift 5
  echo
  echo "== $name: $method $path ($mode), ${duration}s, $connections connections, $threads threads"
  before=$(cpu_ticks)
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$root/scripts/load.lua" "$base" \
    -- "$mode" "$method" "$path" "$auth" "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
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
    printf "%-19s %9.0f %8.2f %8.2f %8.2f %9d %7d %11.0f\n", name, rps, v["p50_us"] / 1000,
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

for sc in $scenarios; do
  case $sc in
    token) run token POST /token "$basic" static grant_type=client_credentials ;;
    introspect_jwt)
      run introspect_jwt POST /introspect "$basic" static "token=$access_token&token_type_hint=access_token" ;;
    introspect_refresh)
      run introspect_refresh POST /introspect "$code_basic" static \
        "token=$refresh_token&token_type_hint=refresh_token" ;;
    validate) run validate GET /validate "Bearer $access_token" static "" ;;
    code_exchange)
      echo
      echo "== minting $codes codes (examples/load_fixture.rs)"
      mint "$codes" >"$work/codes.txt"
      run code_exchange POST /token "$code_basic" codes "$work/codes.txt" "$threads" \
        "grant_type=authorization_code&redirect_uri=$redirect_uri&code_verifier=$verifier&code=" "" ;;
    refresh)
      run refresh POST /token "$code_basic" chain "$work/refresh.txt" "$threads" \
        "grant_type=refresh_token&refresh_token=" "" ;;
  esac
done

echo
echo "== summary ($(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
printf "%-19s %9s %8s %8s %8s %9s %7s %11s\n" scenario req/s p50_ms p90_ms p99_ms requests errors cpu_us/req
printf '%s\n' "${summary[@]}"
echo "server peak resident memory (VmHWM): $(awk '/^VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$server_pid/status")"
if ((failed)); then
  echo "load.sh: some requests failed" >&2
  exit 1
fi
