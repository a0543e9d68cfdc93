#!/usr/bin/env bash
# Creates bench/.venv with the peers of bench/feeds.py (DuckDB, Splink) from PyPI.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/bench/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/bench/peers/requirements.txt"
"$venv/bin/python" -c 'import duckdb, splink; print("duckdb", duckdb.__version__, "splink", splink.__version__)'
