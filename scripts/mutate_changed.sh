#!/usr/bin/env bash
# Mutation testing of the core modules a change touched: the files of pyproject.toml's [tool.mutmut] only_mutate that
# differ from BASE (default main; `git diff --name-only BASE...HEAD` plus uncommitted edits), each mutated and run
# against the unit tests mutmut maps to it. Run it before resolving an issue that changes a core module (README:
# Development, mutation testing); every survivor is a missing test or an equivalent mutant to name in the README's table.
#
#   scripts/mutate_changed.sh            # against main, 2 test processes
#   scripts/mutate_changed.sh HEAD~3 1   # against another base, 1 process
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-main}"
children="${2:-2}"

mapfile -t changed < <({ git diff --name-only "$base"...HEAD; git diff --name-only HEAD; } | sort -u)
mapfile -t names < <(python - "${changed[@]}" <<'EOF'
import sys, tomllib
core = tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["only_mutate"]
for path in sys.argv[1:]:
    if path in core:  # w2m2w/run/rundir.py -> w2m2w.run.rundir.x* (the module's own mutants, not its neighbours')
        print(path[: -len(".py")].replace("/", ".") + ".x*")
EOF
)
if [ "${#names[@]}" -eq 0 ]; then
  echo "no core module changed against $base: nothing to mutate"
  exit 0
fi
echo "mutating: ${names[*]}"
mutmut run --max-children "$children" "${names[@]}"
echo
echo "survivors (mutmut show NAME prints one):"
for n in "${names[@]}"; do
  mutmut results | grep -F "${n%x\*}" || true
done
