# Sourced by the scripts: make sure .venv exists with the package and its test
# dependencies at the pinned versions. Safe to run again; fast when nothing changed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DBT_S3_EXPORT_VENV:-$REPO/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo ">> creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat "$REPO/pyproject.toml" "$REPO/constraints.txt" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo ">> installing dependencies into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -c "$REPO/constraints.txt" -e "$REPO[test]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
