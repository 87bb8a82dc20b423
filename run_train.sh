#!/usr/bin/env bash
# Linux/macOS: make venv/ if missing, install the requirements, then train.
# All arguments go to train.py, e.g.  bash run_train.sh --n_epochs 50
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x venv/bin/python ]; then
    python3 -m venv venv
fi
venv/bin/python -m pip install -r requirements.txt
status=0
venv/bin/python train.py "$@" || status=$?
echo "The venv holds this project's Python: 'source venv/bin/activate' in a terminal lets you"
echo "type python generate.py, python evaluate.py, tensorboard --logdir=./logs (or call venv/bin/python)."
exit "$status"
