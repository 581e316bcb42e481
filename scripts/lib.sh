# Helpers shared by the scripts in scripts/ (sourced, not run). Callers `cd` to the repository
# root first and use `set -euo pipefail`.

CARGO_LAMBDA_VERSION=1.9.2

# cargo-lambda on PATH: already there, or installed (PyPI package, brings zig for the cross
# builds) into .tools/cargo-lambda.
ensure_cargo_lambda() {
  if ! command -v cargo-lambda >/dev/null; then
    local venv=.tools/cargo-lambda
    if [ ! -x "$venv/bin/cargo-lambda" ]; then
      echo "==> installing cargo-lambda $CARGO_LAMBDA_VERSION from PyPI into $venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
    fi
    export PATH="$PWD/$venv/bin:$PATH"
  fi
}

# DynamoDB Local and moto's KMS on loopback: the running ones .tools/services.env names (as
# scripts/test.sh leaves them for the whole run), else started here by scripts/test-services.sh.
# Exports GATEHOUSE_TEST_DYNAMODB_URL and GATEHOUSE_TEST_KMS_URL; LIB_STARTED_SERVICES=1 when
# this call started them (stop_started_services stops them again).
LIB_STARTED_SERVICES=0
services_reachable() {
  [ -f .tools/services.env ] || return 1
  # shellcheck disable=SC1091
  . .tools/services.env
  python3 - "$GATEHOUSE_TEST_DYNAMODB_URL" "$GATEHOUSE_TEST_KMS_URL" <<'PY' 2>/dev/null
import socket, sys, urllib.parse
for u in sys.argv[1:]:
    p = urllib.parse.urlparse(u)
    socket.create_connection((p.hostname, p.port), 0.5).close()
PY
}
ensure_services() {
  if ! services_reachable; then
    # A start that fails half-way must not leave a server running.
    scripts/test-services.sh start || { scripts/test-services.sh stop >/dev/null 2>&1 || true; return 1; }
    LIB_STARTED_SERVICES=1
    services_reachable
  fi
  export GATEHOUSE_TEST_DYNAMODB_URL GATEHOUSE_TEST_KMS_URL
}
stop_started_services() {
  if [ "$LIB_STARTED_SERVICES" = 1 ]; then
    scripts/test-services.sh stop >/dev/null 2>&1 || true
    LIB_STARTED_SERVICES=0
  fi
}

# A fresh tenant on the test services, as a stack has it: a table made by `gatehouse
# create-table` (the schema the code and infra/template.yaml share) and a symmetric KMS key for
# the sealed signer (moto). Prints the environment lines a function or server needs.
#   tenant_env GATEHOUSE_BINARY TENANT
tenant_env() {
  local gatehouse=$1 tenant=$2 table key_id
  table="gatehouse-$tenant-$(date +%s)-$$"
  key_id=$(AWS_ENDPOINT_URL_KMS=$GATEHOUSE_TEST_KMS_URL .tools/venv/bin/python - <<'PY'
import os, boto3
kms = boto3.client("kms", endpoint_url=os.environ["AWS_ENDPOINT_URL_KMS"], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
print(kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"])
PY
  )
  env -i PATH="$PATH" GATEHOUSE_TABLE_NAME="$table" AWS_ENDPOINT_URL_DYNAMODB="$GATEHOUSE_TEST_DYNAMODB_URL" \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 "$gatehouse" create-table >/dev/null
  cat <<EOF
GATEHOUSE_TENANT=$tenant
GATEHOUSE_STORE=dynamodb
GATEHOUSE_TABLE_NAME=$table
GATEHOUSE_SIGNER=sealed
GATEHOUSE_KMS_KEY_ID=$key_id
AWS_ENDPOINT_URL_DYNAMODB=$GATEHOUSE_TEST_DYNAMODB_URL
AWS_ENDPOINT_URL_KMS=$GATEHOUSE_TEST_KMS_URL
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_REGION=us-east-1
EOF
}
