#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a set time (README "Fuzzing"). Not part of
# scripts/test.sh / CI: it needs the nightly toolchain and its own sanitizer build of the whole
# crate graph (fuzz/target: 25 minutes cold on 2 busy cores, 3-4 minutes after a change to shared/).
#
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_TARGETS    the targets to run, space-separated (default: every target, `cargo fuzz list`)
#   FUZZ_SANITIZER  address (default, as cargo-fuzz) or none (faster builds and runs)
#   FUZZ_RSS_MB     libFuzzer's -rss_limit_mb per target (default 2048)
#   FUZZ_TOOLCHAIN  the nightly toolchain to use (default nightly)
#
# Installs cargo-fuzz (crates.io, `cargo install --locked`, into the normal cargo bin directory)
# when it is missing. Each target starts from its seeds in fuzz/corpus/<target> plus what earlier
# runs found (fuzz/target/corpus/<target>, not checked in). Exits 1 if any target crashed, leaked,
# timed out or ran out of memory, naming the input libFuzzer saved (fuzz/artifacts/<target>/...);
# reproduce one with `cargo +nightly fuzz run <target> <file>`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-address}
rss_mb=${FUZZ_RSS_MB:-2048}
toolchain=${FUZZ_TOOLCHAIN:-nightly}

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "installing the $toolchain toolchain (cargo-fuzz needs nightly)"
  rustup toolchain install "$toolchain" --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi
fuzz() { cargo "+$toolchain" fuzz "$@"; }

# -max_len per target: the longest input the code under test reads before refusing by length
# (bodies and query strings 16 KiB, tokens and assertions 8 KiB, DPoP proofs 4 KiB, redirect
# URIs 2000 characters), plus a margin so the length checks themselves are exercised.
max_len() {
  case "$1" in
    form_params | client_metadata | admin_api) echo 17000 ;;
    access_token | jwt_assertion | basic_auth) echo 9000 ;;
    dpop_proof) echo 4500 ;;
    redirect_uri) echo 2100 ;;
    settings_merge) echo 4096 ;;
    *) echo 4096 ;;
  esac
}

# The JSON targets get a dictionary of JSON syntax and the admin API's member names.
dict() {
  case "$1" in
    client_metadata | settings_merge | admin_api) echo "-dict=fuzz/dict/json.dict" ;;
  esac
}

targets=${FUZZ_TARGETS:-$(fuzz list)}
echo "==> building the fuzz targets (cargo +$toolchain fuzz build, sanitizer $sanitizer)"
fuzz build --sanitizer "$sanitizer"

# The targets that need a store keep it under TMPDIR: inside fuzz/target, emptied each run.
export TMPDIR="$root/fuzz/target/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR" fuzz/target/logs

failed=()
printf '\n%-16s %12s %10s %8s %8s %8s  %s\n' target execs exec/s cov corpus rss_mb result
for t in $targets; do
  mkdir -p "fuzz/target/corpus/$t" "fuzz/corpus/$t"
  log="fuzz/target/logs/$t.log"
  status=0
  extra=()
  if [ -n "$(dict "$t")" ]; then extra+=("$(dict "$t")"); fi
  fuzz run --sanitizer "$sanitizer" "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" -rss_limit_mb="$rss_mb" -timeout=20 \
    -close_fd_mask=1 -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || status=$?
  final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1 || true; }
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
  corpus=$(find "fuzz/target/corpus/$t" -type f | wc -l)
  result=ok
  if [ "$status" -ne 0 ]; then
    result="FAILED (exit $status)"
    failed+=("$t")
  fi
  printf '%-16s %12s %10s %8s %8s %8s  %s\n' "$t" "$(final_stat number_of_executed_units)" \
    "$(final_stat average_exec_per_sec)" "${cov:--}" "$corpus" "$(final_stat peak_rss_mb)" "$result"
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY' "$log" \
      | head -8 | sed 's/^/    /' || true
    saved=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1 || true)
    echo "    input saved to: ${saved:-(none; see $log)}"
    echo "    reproduce: cargo +$toolchain fuzz run $t ${saved:-<input>}   full log: $log"
  fi
done
rm -rf "$TMPDIR"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
echo "all ${seconds}s fuzz runs passed"
