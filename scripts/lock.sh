#!/usr/bin/env bash
# Regenerate requirements.lock and requirements-test.lock from pyproject.toml in throwaway venvs.
set -euo pipefail
export LC_ALL=C  # one collation for sort and comm
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
quiet() { grep -v "Location .* is ignored" >&2 || true; }  # pip notes about the local mirrors
python3 -m venv "$tmp/rt" && "$tmp/rt/bin/pip" install -q ".[all]" 2> >(quiet)
python3 -m venv "$tmp/all" && "$tmp/all/bin/pip" install -q ".[all,test]" 2> >(quiet)
freeze() { "$1/bin/pip" freeze --exclude-editable | grep -v '^edgedeploy' | sort; }
{ echo "# Pinned runtime environment (all engines). Regenerate: scripts/lock.sh"; freeze "$tmp/rt"; } > requirements.lock
{ echo "# Pinned test-only additions, on top of requirements.lock. Regenerate: scripts/lock.sh"
  comm -13 <(freeze "$tmp/rt") <(freeze "$tmp/all"); } > requirements-test.lock
echo "wrote requirements.lock ($(grep -vc '^#' requirements.lock) pins) and requirements-test.lock"
