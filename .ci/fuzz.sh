#!/usr/bin/env bash
# Runs every fuzz target in the repository for FUZZTIME each (default 30s;
# a duration or a count of inputs such as 2000x, as go test -fuzztime takes)
# and prints one line per target with its outcome and wall time.
# `make test` runs this with FUZZTIME=2000x; `make fuzz` with the default.
# A failing input is written under the package's testdata/fuzz/ by go test:
# commit it with the fix so it stays a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}
status=0
summary=()
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  start=$(date +%s)
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"${TMPDIR:-/tmp}/fuzz-$$.log" 2>&1; then
    result=ok
  else
    result=FAIL
    status=1
    cat "${TMPDIR:-/tmp}/fuzz-$$.log" >&2
  fi
  summary+=("$(printf '%-4s %-28s %-22s %3ss' "$result" "$pkg" "$name" "$(( $(date +%s) - start ))")")
done < <(grep -rhoE --include='*_test.go' -H '^func (Fuzz[A-Za-z0-9_]+)' . | sed -E 's/^\.\/(.*):func (Fuzz[A-Za-z0-9_]+)$/\1:\2/' | sort -u)
rm -f "${TMPDIR:-/tmp}/fuzz-$$.log"
echo "fuzz summary (FUZZTIME=$fuzztime each):"
printf '  %s\n' "${summary[@]}"
exit $status
