"""TensorBoard for real: serve a run's logs and read them back over its HTTP data API."""

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import RUN
from utils.recorder import TENSORBOARD_TAGS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_tensorboard_serves_the_scalars_of_the_csv(short_run: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(short_run / "logs"),
         "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/data/plugin/scalars"
    try:
        tags: dict = {}
        deadline = time.time() + 90
        while not tags and time.time() < deadline:  # the server starts, then reads the logs
            assert server.poll() is None, server.stderr.read()
            with contextlib.suppress(OSError):  # not listening yet
                tags = get_json(f"{base}/tags")
            time.sleep(0.5)
        (run,) = [name for name in tags]  # one run folder
        assert set(TENSORBOARD_TAGS.values()) <= set(tags[run])
        assert "eval/fid" in tags[run]
        csv = pd.read_csv(short_run / "results" / RUN / "training_data.csv")
        for column, tag in (("D_loss", "loss/D"), ("D(x)", "D_output/real")):
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            series = get_json(f"{base}/scalars?{query}")  # [wall time, step, value] rows
            assert [step for _, step, _ in series] == csv["step"].tolist()
            assert [value for *_, value in series] == pytest.approx(csv[column].tolist(),
                                                                    rel=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)
