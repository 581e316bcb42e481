#!/usr/bin/env bash
# Static checks of infra/template.yaml (offline, no AWS credentials):
#   1. sam validate --lint   (AWS SAM CLI: the SAM transform, then cfn-lint's rules)
#   2. cfn-lint              (the same linter on its own, every rule, warnings count too)
#   3. checkov               (security policies; accepted findings are skipped in the template
#                             under Metadata.checkov.skip, each with its reason)
# Installs pinned aws-sam-cli and checkov from PyPI into venvs under .tools/ on first use.
# Fails on any finding.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

SAM_VERSION=1.170.0      # brings cfn-lint
CHECKOV_VERSION=3.3.30
template=infra/template.yaml

# One venv per tool: their dependency pins differ. A marker file records the installed pin.
install() { # venv-dir package==version executable
  local venv=$1 spec=$2 exe=$3
  if [ ! -x "$venv/bin/$exe" ] || [ "$(cat "$venv/.installed" 2>/dev/null)" != "$spec" ]; then
    echo "installing $spec into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec"
    echo "$spec" >"$venv/.installed"
  fi
}

step "tools"
install .tools/sam "aws-sam-cli==$SAM_VERSION" sam
install .tools/checkov "checkov==$CHECKOV_VERSION" checkov
.tools/sam/bin/sam --version
echo "cfn-lint $(.tools/sam/bin/cfn-lint --version | awk '{print $2}')"
echo "checkov $(.tools/checkov/bin/checkov --version)"

# No credentials are needed: a region is enough, and nothing is sent anywhere.
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false

step "sam validate --lint"
.tools/sam/bin/sam validate --lint -t "$template"

step "cfn-lint"
.tools/sam/bin/cfn-lint --non-zero-exit-code informational -- "$template"

# checkov evaluates Conditions with the parameters' defaults, so resources of the other signer
# mode and the optional custom domain would go unscanned: scan a second copy whose defaults
# switch every optional resource on.
variant_dir=$(mktemp -d)
trap 'rm -rf "$variant_dir"' EXIT
python3 - "$template" "$variant_dir/template.yaml" <<'PY'
import re, sys
overrides = {
    "SignerMode": "kms",
    "DomainName": "auth.example.com",
    "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555",
    "HostedZoneId": "Z0123456789EXAMPLE",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:gatehouse-alarms",
    "IssuerUrl": "https://auth.example.com",
    "DefaultAudience": "https://api.example.com",
}
out, param, section, seen = [], None, None, set()
for line in open(sys.argv[1]):
    if re.match(r"^\S", line):
        section = line.split(":")[0]
    m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
    if section == "Parameters" and m:
        param = m.group(1)
    if section == "Parameters" and param in overrides and re.match(r"^    Default: ", line):
        line = f'    Default: "{overrides[param]}"\n'
        seen.add(param)
    out.append(line)
missing = set(overrides) - seen
if missing:
    sys.exit(f"infra-check: no Default line for {sorted(missing)}")
open(sys.argv[2], "w").write("".join(out))
PY

step "checkov (defaults: sealed signer, execute-api URL)"
.tools/checkov/bin/checkov -f "$template" --framework cloudformation --skip-download --compact --quiet

step "checkov (kms signer, custom domain, alarm topic)"
.tools/checkov/bin/checkov -f "$variant_dir/template.yaml" --framework cloudformation --skip-download --compact --quiet

step "infrastructure checks passed"
