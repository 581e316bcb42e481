#!/usr/bin/env bash
# Lambda runtime test: the built function binaries, run under cargo-lambda's Lambda runtime
# emulator (`cargo lambda watch`), answer the API Gateway events in events/ as asserted below.
# This proves the binaries (lambda_http's event parsing, the runtime loop, the cold-start state),
# not just the routers that tests/it/events.rs drives in-process.
#
#   scripts/lambda-runtime-test.sh                   the zips scripts/package.sh built
#   scripts/lambda-runtime-test.sh --bin-dir DIR     DIR/<function> binaries (e.g. target/debug)
#
# The zips' binaries run natively when their architecture is the host's; arm64 zips on an x86-64
# host run under QEMU user-mode emulation (qemu-user and the arm64 C library, installed with apt
# when missing). Where QEMU cannot be had, the script says so and builds host binaries instead.
#
# How it runs: `cargo lambda watch --only-lambda-apis` serves the Lambda runtime API and the
# invoke API on a free loopback port; the script starts each binary itself (already built, no
# recompilation) against that runtime API, with an env file that points them all at one fresh
# DynamoDB table in DynamoDB Local and the sealed signer with a KMS key in moto (the services
# scripts/test.sh runs; started here when they are not running), the events' issuer and admin
# token: the configuration a stack gives them (the functions are built without the embedded store).
# token-admin also gets GATEHOUSE_ADMIN_IAM=true, as the stack sets it.
#
# The events authenticate as `events-client`, whose secret exists only in the tests (the admin API
# generates every secret). So the script registers a client with token-admin/create-client.json
# and rewrites the other events' `authorization` header (and count-tokens.json's client_id) to
# that client at run time; everything else in the events is sent as it is. Every event file must
# be exercised here: a new one fails the script until it gets an assertion.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
FUNCTIONS=(authorize introspect revoke token token-admin)
ISSUER=https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com
ADMIN_TOKEN=events-admin-token-0123456789abcdef0123456789

bin_dir=""
case "${1:-}" in
  "") ;;
  --bin-dir) bin_dir=${2:?--bin-dir needs a directory} ;;
  *) echo "usage: $0 [--bin-dir DIR]" >&2; exit 2 ;;
esac

ensure_cargo_lambda
ensure_services

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
  stop_started_services
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Which binaries, and how to run them.
runner=()
host_build() {
  echo "==> building host binaries (cargo build --workspace --bins)"
  cargo build --workspace --bins --locked --quiet
  bin_dir=target/debug
}
have_qemu() {
  command -v qemu-aarch64 >/dev/null && [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]
}
if [ -z "$bin_dir" ]; then
  deploy=target/lambda/deploy
  if [ ! -f "$deploy/ARCHITECTURE" ]; then
    echo "no zips in $deploy: run scripts/package.sh first, or pass --bin-dir" >&2
    exit 1
  fi
  arch=$(cat "$deploy/ARCHITECTURE")
  bin_dir=$work/bin
  mkdir -p "$bin_dir"
  for f in "${FUNCTIONS[@]}"; do
    python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("bootstrap"))' \
      "$deploy/$f/bootstrap.zip" >"$bin_dir/$f"
    chmod +x "$bin_dir/$f"
  done
  host=$(uname -m)
  if [ "$arch" = "$host" ] || { [ "$arch" = arm64 ] && [ "$host" = aarch64 ]; }; then
    echo "==> running the $arch zips' binaries natively"
  elif [ "$arch" = arm64 ]; then
    if ! have_qemu && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "==> installing QEMU user-mode emulation and the arm64 C library (apt)"
      (apt-get update -qq && apt-get install -y -qq qemu-user libc6-arm64-cross libgcc-s1-arm64-cross) \
        >"$work/apt.log" 2>&1 || tail -5 "$work/apt.log" >&2
    fi
    if have_qemu; then
      echo "==> running the arm64 zips' binaries under qemu-aarch64"
      runner=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
    else
      echo "WARNING: cannot run arm64 binaries here (no qemu-aarch64); testing host builds instead" >&2
      host_build
    fi
  else
    echo "WARNING: cannot run $arch binaries on $host; testing host builds instead" >&2
    host_build
  fi
fi
for f in "${FUNCTIONS[@]}"; do
  [ -x "$bin_dir/$f" ] || { echo "missing binary $bin_dir/$f" >&2; exit 1; }
done

# ---------------------------------------------------------------------------------------------
# The emulator and the functions.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The stack's configuration: DynamoDB (Local) and the sealed signer (moto's KMS), a fresh table
# made by the host-built gatehouse binary (`create-table`).
cargo build --bin gatehouse --locked --quiet
tenant_env target/debug/gatehouse events >"$work/functions.env"
cat >>"$work/functions.env" <<EOF
GATEHOUSE_ISSUER=$ISSUER
GATEHOUSE_ADMIN_TOKEN=$ADMIN_TOKEN
GATEHOUSE_LOG=warn
AWS_LAMBDA_FUNCTION_VERSION=1
AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256
EOF

echo "==> cargo lambda watch --only-lambda-apis on 127.0.0.1:$port"
cargo lambda watch --only-lambda-apis --ignore-changes -A 127.0.0.1 -P "$port" \
  --env-file "$work/functions.env" >"$work/watch.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" \
    2>/dev/null && break
  sleep 0.1
done

declare -A fn_pid fn_start
for f in "${FUNCTIONS[@]}"; do
  extra=()
  [ "$f" = token-admin ] && extra=(GATEHOUSE_ADMIN_IAM=true)
  fn_start[$f]=$(date +%s%3N)
  (
    set -a
    # shellcheck disable=SC1091
    . "$work/functions.env"
    set +a
    exec env "${extra[@]}" AWS_LAMBDA_FUNCTION_NAME="$f" \
      AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/$f" "${runner[@]}" "$bin_dir/$f"
  ) >"$work/$f.log" 2>&1 &
  fn_pid[$f]=$!
  pids+=($!)
done

# Ready = the function logged its service_started audit event (state built, about to poll).
declare -A init_ms init_cpu_ms
for f in "${FUNCTIONS[@]}"; do
  for _ in $(seq 300); do
    grep -q '"service_started"' "$work/$f.log" && break
    kill -0 "${fn_pid[$f]}" 2>/dev/null || { echo "$f exited at start:" >&2; cat "$work/$f.log" >&2; exit 1; }
    sleep 0.05
  done
  grep -q '"service_started"' "$work/$f.log" || { echo "$f did not start:" >&2; cat "$work/$f.log" >&2; exit 1; }
  # The log's modification time is when the line was written (nothing is logged before it).
  init_ms[$f]=$(( $(stat -c %.3Y "$work/$f.log" | tr -d .) - fn_start[$f] ))
  # CPU time spent so far (start-up, then idle waiting for the first event).
  init_cpu_ms[$f]=$(( $(cut -d' ' -f1 "/proc/${fn_pid[$f]}/schedstat" 2>/dev/null || echo 0) / 1000000 ))
done

# ---------------------------------------------------------------------------------------------
# The events, asserted.
echo "==> invoking the functions with events/"
status=0
WORK=$work PORT=$port ISSUER=$ISSUER ADMIN_TOKEN=$ADMIN_TOKEN python3 - <<'PY' || status=$?
import base64, json, os, subprocess, sys, urllib.parse, urllib.request

work, port, issuer, admin = os.environ["WORK"], os.environ["PORT"], os.environ["ISSUER"], os.environ["ADMIN_TOKEN"]
used, checks = set(), 0

def check(cond, what, detail=""):
    global checks
    if not cond:
        print(f"FAIL: {what}\n  {detail}", file=sys.stderr)
        sys.exit(1)
    checks += 1
    print(f"  ok  {what}")

def event(rel):
    used.add(rel)
    with open(os.path.join("events", rel)) as f:
        return json.load(f)

def body_of(ev):
    b = ev.get("body") or ""
    return base64.b64decode(b).decode() if ev.get("isBase64Encoded") else b

def set_body(ev, text):
    ev["body"] = base64.b64encode(text.encode()).decode() if ev.get("isBase64Encoded") else text
    if "content-length" in ev["headers"]:
        ev["headers"]["content-length"] = str(len(text.encode()))

def basic(cid, secret):
    enc = lambda s: urllib.parse.quote_plus(s)
    return "Basic " + base64.b64encode(f"{enc(cid)}:{enc(secret)}".encode()).decode()

def invoke(fn, ev, label):
    path = os.path.join(work, label.replace("/", "_") + ".json")
    with open(path, "w") as f:
        json.dump(ev, f)
    out = subprocess.run(
        ["cargo", "lambda", "invoke", "-A", "127.0.0.1", "-P", port, fn, "--data-file", path],
        capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        check(False, f"{label}: cargo lambda invoke {fn}", out.stderr.strip()[-2000:])
    resp = json.loads(out.stdout)
    body = resp.get("body") or ""
    if resp.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
    return resp["statusCode"], headers, body

def as_json(body, label):
    try:
        return json.loads(body)
    except ValueError:
        check(False, f"{label}: JSON body", body[:500])

# 1. Register the client the other events will use (bearer admin token).
s, h, b = invoke("token-admin", event("token-admin/create-client.json"), "create-client")
c = as_json(b, "create-client")
check(s == 201 and c.get("client_id") and c.get("client_secret"),
      "token-admin/create-client.json -> 201 with client_id and one-time client_secret", f"{s} {b}")
cid, secret = c["client_id"], c["client_secret"]

# 2. The same through API Gateway's IAM authorizer identity (GATEHOUSE_ADMIN_IAM=true).
s, h, b = invoke("token-admin", event("token-admin/create-client-iam.json"), "create-client-iam")
check(s == 201 and as_json(b, "create-client-iam").get("client_id"),
      "token-admin/create-client-iam.json -> 201 (IAM identity trusted)", f"{s} {b}")

# 3. Client credentials (base64 body as API Gateway sends it).
ev = event("token/client-credentials.json")
ev["headers"]["authorization"] = basic(cid, secret)
s, h, b = invoke("token", ev, "client-credentials")
t = as_json(b, "client-credentials")
check(s == 200 and t.get("token_type") == "Bearer" and t.get("expires_in") == 3600 and t.get("scope") == "read"
      and t.get("access_token", "").count(".") == 2 and h.get("cache-control") == "no-store",
      "token/client-credentials.json -> 200 Bearer token, expires_in 3600, scope read, no-store", f"{s} {h} {b}")
access_token = t["access_token"]
kid = json.loads(base64.urlsafe_b64decode(access_token.split(".")[0] + "==")).get("kid")

# 4. Wrong secret.
ev = event("token/bad-client.json")
ev["headers"]["authorization"] = basic(cid, "wrong-" + secret)
s, h, b = invoke("token", ev, "bad-client")
check(s == 401 and as_json(b, "bad-client").get("error") == "invalid_client"
      and h.get("www-authenticate") == 'Basic realm="gatehouse"',
      "token/bad-client.json -> 401 invalid_client with WWW-Authenticate Basic", f"{s} {h} {b}")

# 5. Metadata and keys.
s, h, b = invoke("token", event("token/metadata.json"), "metadata")
m = as_json(b, "metadata")
check(s == 200 and m.get("issuer") == issuer and m.get("token_endpoint") == issuer + "/token"
      and m.get("jwks_uri") == issuer + "/.well-known/jwks.json" and h.get("cache-control") == "public, max-age=300",
      "token/metadata.json -> 200 RFC 8414 metadata for the issuer", f"{s} {h} {b}")
s, h, b = invoke("token", event("token/jwks.json"), "jwks")
keys = as_json(b, "jwks").get("keys", [])
check(s == 200 and any(k.get("kid") == kid and k.get("kty") == "EC" for k in keys),
      "token/jwks.json -> 200 JWKS holding the access token's key", f"{s} {b}")

# 6. Count the client's active tokens.
ev = event("token-admin/count-tokens.json")
ev["rawQueryString"] = ev["rawQueryString"].replace("client_id=events-client", "client_id=" + urllib.parse.quote(cid))
ev["queryStringParameters"]["client_id"] = cid
s, h, b = invoke("token-admin", ev, "count-tokens")
check(s == 200 and as_json(b, "count-tokens") == {"count": 1}, "token-admin/count-tokens.json -> 200 {\"count\": 1}", f"{s} {b}")

# 7. Introspection, revocation, introspection again.
active = event("introspect/active.json")
active["headers"]["authorization"] = basic(cid, secret)
set_body(active, body_of(active).replace("{{ACCESS_TOKEN}}", access_token))
s, h, b = invoke("introspect", active, "active")
i = as_json(b, "active")
check(s == 200 and i.get("active") is True and i.get("client_id") == cid and i.get("scope") == "read"
      and i.get("iss") == issuer, "introspect/active.json -> 200 active, client_id, scope, iss", f"{s} {b}")
ev = event("introspect/inactive.json")
ev["headers"]["authorization"] = basic(cid, secret)
s, h, b = invoke("introspect", ev, "inactive")
check(s == 200 and as_json(b, "inactive") == {"active": False}, "introspect/inactive.json -> 200 exactly {\"active\": false}", f"{s} {b}")
validate = event("introspect/validate.json")
validate["headers"]["authorization"] = validate["headers"]["authorization"].replace("{{ACCESS_TOKEN}}", access_token)
s, h, b = invoke("introspect", validate, "validate")
v = as_json(b, "validate")
check(s == 200 and v.get("active") is True and v.get("client_id") == cid and v.get("scope") == "read"
      and h.get("cache-control") == "no-store", "introspect/validate.json -> 200 with client_id and scope, no-store",
      f"{s} {h} {b}")
ev = event("revoke/revoke.json")
ev["headers"]["authorization"] = basic(cid, secret)
set_body(ev, body_of(ev).replace("{{ACCESS_TOKEN}}", access_token))
s, h, b = invoke("revoke", ev, "revoke")
check(s == 200 and b == "", "revoke/revoke.json -> 200, empty body", f"{s} {b!r}")
s, h, b = invoke("introspect", active, "active-after-revoke")
check(s == 200 and as_json(b, "active-after-revoke") == {"active": False},
      "introspect/active.json after revocation -> {\"active\": false}", f"{s} {b}")
s, h, b = invoke("introspect", validate, "validate-after-revoke")
check(s == 401 and as_json(b, "validate-after-revoke").get("error") == "invalid_token"
      and h.get("www-authenticate", "").startswith('Bearer realm="gatehouse", error="invalid_token"'),
      "introspect/validate.json after revocation -> 401 invalid_token with a Bearer challenge", f"{s} {h} {b}")

# 8. Authorization endpoint: unknown client is an error page, never a redirect.
s, h, b = invoke("authorize", event("authorize/unknown-client.json"), "unknown-client")
check(s == 400 and h.get("content-type", "").startswith("text/html") and "location" not in h,
      "authorize/unknown-client.json -> 400 HTML error page, no redirect", f"{s} {h}")

# Every event file was sent.
present = {os.path.relpath(os.path.join(d, f), "events") for d, _, fs in os.walk("events") for f in fs if f.endswith(".json")}
check(present == used, "every file in events/ was invoked",
      f"not invoked: {sorted(present - used)}: add its assertion to scripts/lambda-runtime-test.sh")

# 9. The router in Cargo.toml ([workspace.metadata.lambda.watch.router]): plain HTTP requests to
#    the emulator reach the function the stack routes them to.
def http(method, path, data=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

s, b = http("GET", "/.well-known/oauth-authorization-server")
check(s == 200 and json.loads(b).get("issuer") == issuer, "watch router: GET /.well-known/oauth-authorization-server -> token", f"{s} {b}")
s, b = http("POST", "/introspect", b"token=not-a-token",
            {"Authorization": basic(cid, secret), "Content-Type": "application/x-www-form-urlencoded"})
check(s == 200 and json.loads(b) == {"active": False}, "watch router: POST /introspect -> introspect", f"{s} {b}")
s, b = http("GET", "/validate")
check(s == 401 and json.loads(b).get("error") == "unauthorized", "watch router: GET /validate -> introspect", f"{s} {b}")
s, b = http("GET", "/admin/tokens/count?type=access&client_id=" + urllib.parse.quote(cid),
            headers={"Authorization": "Bearer " + admin})
check(s == 200 and json.loads(b) == {"count": 0}, "watch router: GET /admin/tokens/count -> token-admin", f"{s} {b}")
s, b = http("GET", "/authorize?client_id=no-such-client&response_type=code")
check(s == 400, "watch router: GET /authorize -> authorize", f"{s} {b[:200]}")
s, b = http("POST", "/authorize/login", b"", {"Content-Type": "application/x-www-form-urlencoded"})
check(s not in (404, 502, 504), "watch router: POST /authorize/login -> authorize (sign-in form)", f"{s} {b[:200]}")

print(f"lambda runtime test: {checks} checks passed")
PY

if [ "$status" != 0 ]; then
  for f in "${FUNCTIONS[@]}"; do echo "--- $f log" >&2; tail -20 "$work/$f.log" >&2; done
  echo "--- watch log" >&2; tail -20 "$work/watch.log" >&2
  exit "$status"
fi

printf '\n%-12s %10s %15s %15s\n' function "init (ms)" "init CPU (ms)" "peak RSS (KiB)"
for f in "${FUNCTIONS[@]}"; do
  rss=$(awk '/^VmHWM/ {print $2}' "/proc/${fn_pid[$f]}/status" 2>/dev/null || echo "?")
  printf '%-12s %10s %15s %15s\n' "$f" "${init_ms[$f]}" "${init_cpu_ms[$f]}" "$rss"
done
echo "(init: process start to ready, all five starting at once on this machine's cores)"
[ ${#runner[@]} -gt 0 ] && echo "(under ${runner[0]}: times and memory include the emulator)"
echo "==> lambda runtime test passed in $(( $(date +%s) - start ))s"
