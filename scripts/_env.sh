# Sourced by the other scripts. Creates the project's virtualenvs on first use and reinstalls
# them when their dependency files change; everything else comes from here.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
CHECKOV_VENV="$ROOT/.venv-checkov"

pick_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  return 2
}

# ensure_venv DIR INSTALL-ARGS...: (re)create DIR when the files it installs from changed (the
# project's own, and any requirements or constraints file named with -r or -c).
ensure_venv() {
  local dir=$1; shift
  local stamp inputs=("$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT/requirements/"*.txt) previous=""
  for arg in "$@"; do
    case $previous in -r|-c) inputs+=("$arg") ;; esac
    previous=$arg
  done
  stamp="$dir/.stamp-$(cat "${inputs[@]}" | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    local python
    python=$(pick_python)
    echo "setting up $dir ..." >&2
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    touch "$stamp"
  fi
}

ensure_project_venv() { ensure_venv "$VENV" -c "$ROOT/requirements/project.lock" -e "$ROOT[dev,handlers]"; }
ensure_checkov_venv() {
  ensure_venv "$CHECKOV_VENV" -c "$ROOT/requirements/checkov.lock" -r "$ROOT/requirements/checkov.txt"
}

# The npm judges (gates/node: @cloud-copilot/iam-simulate, @cdklabs/cdk-validator-cfnguard), pinned by
# its package-lock.json; reinstalled when the lock file changes. Peer dependencies (aws-cdk-lib) are
# not installed (gates/node/.npmrc): only the bundled rules and cfn-guard binary are used.
ensure_node_tools() {
  local dir="$ROOT/gates/node"
  local stamp
  stamp="$dir/node_modules/.stamp-$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "setting up $dir/node_modules ..." >&2
    (cd "$dir" && npm ci --silent)
    touch "$stamp"
  fi
}

# The Python judges (gates/judges.py): their own virtualenv, reinstalled when the pins change.
ensure_judges_venv() { ensure_venv "$ROOT/.venv-judges" -r "$ROOT/gates/judges-requirements.txt"; }
