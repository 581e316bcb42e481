#!/usr/bin/env bash
# Cold start of each Lambda function binary: from exec to the first invocation's response, the
# way Lambda runs it (init phase, then one event), measured against a minimal Lambda runtime API
# (and Extensions API) served by this script on loopback.
#
#   scripts/cold-start.sh                    host binaries built with the `lambda` profile
#   scripts/cold-start.sh --bin-dir DIR      DIR/<function> binaries (e.g. unzipped deploy zips)
#   COLD_RUNS=30 scripts/cold-start.sh       runs per function (default 20)
#   COLD_WARMUP=0 scripts/cold-start.sh      unmeasured runs per function first (default 5)
#
# The functions run as in a stack: DynamoDB store (DynamoDB Local) and the sealed signer (moto's
# KMS): a fresh table (`gatehouse create-table`), a fresh KMS key, a client, a user-less access
# token and the tenant's sealed signing key made by the local server on the same table. Each run
# starts one function process, hands it one API Gateway (HTTP API v2) event from events/ (the
# placeholders filled in) and stops it after the response. Reported per function:
#   cold_ms   exec -> first response received by the runtime API (init + first request's work,
#             including its DynamoDB/KMS round trips to the loopback servers)
#   init_ms   exec -> the function's first `GET .../invocation/next` (ready for events)
#   cpu_ms    CPU time of the process (all threads) when the response arrived
#   peak_kib  peak resident memory (VmHWM) when the response arrived
# as medians (and p90 for cold_ms) over the runs. Loopback DynamoDB Local is a JVM and moto a
# Python server: their answer times are part of cold_ms; `cpu_ms` is the function's alone. The
# unmeasured runs first let the emulators serve these calls a few times (the JVM compiles its hot
# paths), as AWS's services have: freshly started, they add 5-10 ms per cold start at first.
#
# Needs: cargo, python3, Java 17 + npm + pip for scripts/test-services.sh (started here when
# .tools/services.env does not point at running services, and stopped again at the end).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
FUNCTIONS=(authorize introspect revoke token token-admin)
runs=${COLD_RUNS:-20}
warmup=${COLD_WARMUP:-5}
bin_dir=""
case "${1:-}" in
  "") ;;
  --bin-dir) bin_dir=${2:?--bin-dir needs a directory} ;;
  *) echo "usage: $0 [--bin-dir DIR]" >&2; exit 2 ;;
esac
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "COLD_RUNS must be a positive integer" >&2; exit 2; }
[[ $warmup =~ ^[0-9]+$ ]] || { echo "COLD_WARMUP must be a non-negative integer" >&2; exit 2; }

echo "==> building (profile lambda: the functions and the gatehouse binary for the set-up)"
pkgs=()
for f in "${FUNCTIONS[@]}"; do pkgs+=(-p "$f"); done
# Two builds: together, cargo would unify the shared crate's features and put the local server's
# embedded store into the function binaries, which the zips do not have.
cargo build --profile lambda --locked --quiet "${pkgs[@]}"
cargo build --profile lambda --locked --quiet --bin gatehouse
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
gatehouse="$target_dir/lambda/gatehouse"
[ -n "$bin_dir" ] || bin_dir="$target_dir/lambda"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ensure_services
work=$(mktemp -d)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  stop_started_services
  rm -rf "$work"
}
trap cleanup EXIT
tenant_env "$gatehouse" coldstart >"$work/functions.env"

ISSUER=https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com
ADMIN_TOKEN="coldstart-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat >>"$work/functions.env" <<EOF
GATEHOUSE_ISSUER=$ISSUER
GATEHOUSE_ADMIN_TOKEN=$ADMIN_TOKEN
GATEHOUSE_LOG=warn
EOF

# The set-up: the local server on the same table makes the sealed key, a client and a token.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(set -a; . "$work/functions.env"; set +a; GATEHOUSE_ADDR=127.0.0.1:$port exec "$gatehouse" serve) >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/.well-known/jwks.json" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
client=$(curl -sS --fail-with-body -X POST "http://127.0.0.1:$port/admin/clients" \
  -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"client_name":"cold start","grant_types":["client_credentials"],"scope":"read write"}')
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

echo "==> $runs cold starts per function after $warmup unmeasured (DynamoDB Local + moto KMS, sealed signer)"
WORK=$work BIN_DIR=$bin_dir RUNS=$runs WARMUP=$warmup CLIENT=$client ISSUER=$ISSUER ADMIN_TOKEN=$ADMIN_TOKEN \
  GATEHOUSE=$gatehouse python3 - <<'PY'
import base64, http.server, json, os, statistics, subprocess, sys, threading, time, urllib.parse, urllib.request

work, bin_dir, runs = os.environ["WORK"], os.environ["BIN_DIR"], int(os.environ["RUNS"])
warmup = int(os.environ["WARMUP"])
client = json.loads(os.environ["CLIENT"])
admin = os.environ["ADMIN_TOKEN"]
basic = "Basic " + base64.b64encode(
    f"{urllib.parse.quote_plus(client['client_id'])}:{urllib.parse.quote_plus(client['client_secret'])}".encode()
).decode()
env_base = dict(os.environ)
for line in open(os.path.join(work, "functions.env")):
    k, _, v = line.strip().partition("=")
    env_base[k] = v

class Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        if os.environ.get("COLD_DEBUG"): sys.stderr.write("%s %s\n" % (time.perf_counter(), a[0] % a[1:]))
    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        run = self.server.run
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/2020-01-01/extension/register":
            self.reply(200, b'{"functionName":"f","functionVersion":"1","handler":"bootstrap"}',
                       [("Lambda-Extension-Identifier", "ext-1"), ("Content-Type", "application/json")])
        elif self.path.endswith("/response") or self.path.endswith("/error"):
            run["response_at"] = time.perf_counter()
            run["stats"] = proc_stats(run["proc"].pid)
            run["response"] = body
            run["error"] = self.path.endswith("/error")
            self.reply(202, b'{"status":"OK"}')
            run["done"].set()
        else:
            self.reply(404)
    def do_GET(self):
        run = self.server.run
        if self.path == "/2018-06-01/runtime/invocation/next" and "next_at" not in run:
            run["next_at"] = time.perf_counter()
            ev = json.dumps(run["event"]).encode()
            self.reply(200, ev, [("Lambda-Runtime-Aws-Request-Id", "req-1"),
                                 ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000)),
                                 ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f"),
                                 ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                                 ("Content-Type", "application/json")])
        else:  # the next event, or the extension's: none comes before the process is stopped
            run["stop"].wait(10)
            self.close_connection = True

def proc_stats(pid):
    cpu = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            cpu += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except OSError:
            pass
    hwm = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM:"))
    return cpu / 1e6, hwm

def event(rel, auth=None, body=None, query=None):
    ev = json.load(open(os.path.join("events", rel)))
    if auth is not None: ev["headers"]["authorization"] = auth
    if query is not None: ev["rawQueryString"] = query
    if body is not None:
        ev["body"] = base64.b64encode(body.encode()).decode() if ev.get("isBase64Encoded") else body
        ev["headers"]["content-length"] = str(len(body.encode()))
    return ev

def cold(function, ev, expect):
    # A runtime API of its own per run: a stopped process's last requests (its next
    # `invocation/next`) must not reach the next run.
    run = {"event": ev, "done": threading.Event(), "stop": threading.Event()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    server.daemon_threads = True
    server.handle_error = lambda *a: None  # a stopped process's connection reset: expected
    server.run = run
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"127.0.0.1:{server.server_address[1]}"
    env = dict(env_base, AWS_LAMBDA_RUNTIME_API=api, AWS_LAMBDA_FUNCTION_NAME=function,
               AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512")
    if function == "token-admin": env["GATEHOUSE_ADMIN_IAM"] = "false"
    start = time.perf_counter()
    run["proc"] = p = subprocess.Popen([os.path.join(bin_dir, function)], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ok = run["done"].wait(30)
    run["stop"].set()
    p.kill(); _, err = p.communicate()
    server.shutdown(); server.server_close()
    if not ok or run.get("error"):
        sys.exit(f"{function}: no response ({err.decode()[-2000:]})")
    resp = json.loads(run["response"])
    status = resp.get("statusCode")
    if status != expect:
        sys.exit(f"{function}: status {status}, expected {expect}: {resp}")
    cpu, hwm = run["stats"]
    return (run["response_at"] - start) * 1000, (run["next_at"] - start) * 1000, cpu, hwm, resp

# A token, from the token function's own first cold start.
_, _, _, _, resp = cold("token", event("token/client-credentials.json", basic, "grant_type=client_credentials"), 200)
body = resp["body"]
if resp.get("isBase64Encoded"): body = base64.b64decode(body).decode()
token = json.loads(body)["access_token"]

cases = {
    "authorize": (event("authorize/unknown-client.json"), 400),
    "introspect": (event("introspect/active.json", basic, f"token={token}&token_type_hint=access_token"), 200),
    "revoke": (event("revoke/revoke.json", basic, "token=not-a-token&token_type_hint=access_token"), 200),
    "token": (event("token/client-credentials.json", basic, "grant_type=client_credentials"), 200),
    "token-admin": (event("token-admin/count-tokens.json", f"Bearer {admin}",
                          query=f"type=access&client_id={urllib.parse.quote(client['client_id'])}"), 200),
}
print(f"{'function':<12} {'cold_ms':>8} {'p90':>7} {'init_ms':>8} {'cpu_ms':>7} {'peak_kib':>9}  event")
for f, (ev, expect) in cases.items():
    for _ in range(warmup):
        cold(f, ev, expect)
    rows = [cold(f, ev, expect) for _ in range(runs)]
    c = sorted(r[0] for r in rows)
    p90 = c[min(len(c) - 1, int(round(0.9 * (len(c) - 1))))]
    print(f"{f:<12} {statistics.median(c):8.1f} {p90:7.1f} {statistics.median(r[1] for r in rows):8.1f} "
          f"{statistics.median(r[2] for r in rows):7.1f} {max(r[3] for r in rows):9d}  "
          f"{ev['requestContext']['http']['method']} {ev['rawPath']}")
PY
