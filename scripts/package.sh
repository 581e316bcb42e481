#!/usr/bin/env bash
# Builds every Lambda function (functions/<name>) for AWS Lambda as a zip and reports the sizes.
#
#   scripts/package.sh            arm64 (Graviton), the default and what infra/template.yaml expects
#   scripts/package.sh --x86-64   x86-64 instead
#
# Installs cargo-lambda (PyPI package, brings zig for the cross-compile) into .tools/cargo-lambda
# if it is not on PATH. The arm64 build needs the Rust target aarch64-unknown-linux-gnu; when
# rustup cannot add it, the script says so and builds x86-64 instead.
#
# Output:
#   target/lambda/<arch>/<function>/bootstrap.zip   what cargo-lambda builds (one dir per arch)
#   target/lambda/deploy/<function>/bootstrap.zip   the zips infra/template.yaml deploys (CodeUri)
#   target/lambda/deploy/ARCHITECTURE               arm64 or x86_64: pass it as the template's
#                                                   Architecture parameter
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
FUNCTIONS=(authorize introspect revoke token token-admin)

arch=arm64
case "${1:-}" in
  "" | --arm64) ;;
  --x86-64) arch=x86-64 ;;
  *) echo "usage: $0 [--arm64|--x86-64]" >&2; exit 2 ;;
esac

ensure_cargo_lambda
echo "==> $(cargo lambda --version)"

libdir=$(rustc --print target-libdir --target aarch64-unknown-linux-gnu 2>/dev/null || true)
if [ "$arch" = arm64 ] && ! [ -d "$libdir" ]; then
  echo "==> adding the Rust target aarch64-unknown-linux-gnu"
  if ! rustup target add aarch64-unknown-linux-gnu; then
    echo "WARNING: the Rust target aarch64-unknown-linux-gnu cannot be installed here;" >&2
    echo "WARNING: building x86-64 zips instead (deploy with Architecture=x86_64)." >&2
    arch=x86-64
  fi
fi

lambda_dir="target/lambda/$arch"
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
# The `lambda` profile (Cargo.toml): release settings, optimised for size.
echo "==> cargo lambda build --profile lambda --$arch --output-format zip --lambda-dir $lambda_dir"
cargo lambda build --profile lambda "--$arch" --output-format zip --lambda-dir "$lambda_dir" --locked "${packages[@]}"

deploy=target/lambda/deploy
rm -rf "$deploy"
mkdir -p "$deploy"
if [ "$arch" = arm64 ]; then echo arm64 >"$deploy/ARCHITECTURE"; else echo x86_64 >"$deploy/ARCHITECTURE"; fi
printf '\n%-12s %10s %10s  %s\n' function zip binary path
for f in "${FUNCTIONS[@]}"; do
  zip="$lambda_dir/$f/bootstrap.zip"
  [ -f "$zip" ] || { echo "missing artifact: $zip" >&2; exit 1; }
  mkdir -p "$deploy/$f"
  cp "$zip" "$deploy/$f/bootstrap.zip"
  unzipped=$(python3 -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$zip")
  printf '%-12s %10s %10s  %s\n' "$f" "$(stat -c %s "$zip")" "$unzipped" "$zip"
done
echo
echo "architecture: $(cat "$deploy/ARCHITECTURE") (sizes in bytes; zips copied to $deploy/ for infra/template.yaml)"
echo "==> packaged in $(( $(date +%s) - start ))s"
