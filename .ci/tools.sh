#!/usr/bin/env bash
# Installs the tools the tests use into .tools/bin (Go programs, pinned) and,
# when running as root, the Debian packages (skopeo). Idempotent: a tool that
# is already present at the pinned version is not rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools/bin"
mkdir -p "$TOOLS"

go_tool() { # name module@version
  local name=$1 mod=$2 stamp="$TOOLS/.$1.version"
  if [[ -x "$TOOLS/$name" && -f "$stamp" && "$(cat "$stamp")" == "$mod" ]]; then return; fi
  echo "tools: building $name ($mod)" >&2
  GOBIN="$TOOLS" go install "$mod"
  echo "$mod" > "$stamp"
}

go_tool crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
go_tool conformance github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111
go_tool versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0
go_tool registry github.com/distribution/distribution/v3/cmd/registry@v3.1.2

if ! command -v skopeo >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "tools: installing skopeo (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq skopeo >/dev/null
  else
    echo "tools: skopeo is missing and this is not a root Debian machine; tests that need it will skip" >&2
  fi
fi
# Debian packages for the deploy and mirror checks (root only, like skopeo):
# systemd-analyze (package systemd) verifies deploy/systemd/shoal.service, and
# the deploy test fails in CI without it; containerd and ctr (package
# containerd) run agent/mirror's end-to-end pull, which skips without them.
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
{ command -v containerd && command -v ctr; } >/dev/null 2>&1 || missing+=(containerd)
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "tools: installing ${missing[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "tools: ${missing[*]} missing and this is not a root Debian machine; the checks that need them skip" >&2
  fi
fi
echo "tools: ready in $TOOLS" >&2
