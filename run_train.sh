#!/usr/bin/env bash
# Linux/macOS: make venv/ if missing, install the requirements, then train.
# All arguments go to train.py, e.g.  bash run_train.sh --n_epochs 50
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x venv/bin/python ]; then
    python3 -m venv venv
fi
venv/bin/python -m pip install -r requirements.txt
exec venv/bin/python train.py "$@"
