"""Joining clusters that users make with `ray start` (token auth on, as Ray 2.60 sets it up),
on loopback: a head plus a worker node carrying two fake GPUs of type T4."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.test_dispatch import spec_text

RAY = str(Path(sys.executable).parent / "ray")


def _kill_cluster(temp_dir: Path) -> None:
    """Every process of the test's cluster (they all name its temp dir), and their workers.
    Never `ray stop`: it stops every Ray on the machine, a sweep running beside the tests too."""
    import psutil

    for proc in psutil.process_iter():
        try:
            if str(temp_dir) in " ".join(proc.cmdline()):
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
        except psutil.Error:
            continue


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    """`ray start ARGS`; when it fails, the failure says what Ray printed."""
    proc = subprocess.run([RAY, "start", *args, "--disable-usage-stats"], env=env, capture_output=True, text=True,
                          timeout=120)
    said = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, f"ray start {' '.join(args)}: exit {proc.returncode}\n{said}"


@pytest.fixture(scope="module")
def ray_start_cluster(tmp_path_factory):
    """`ray start --head` (loopback, token auth from a token made for the test) and `ray start
    --address` of a second node with the GPUs. Returns (address, env with the token, env
    without it)."""
    hostname = socket.gethostname()
    if not socket.gethostbyname(hostname).startswith("127."):
        pytest.skip(f"the worker node dials the head as {hostname!r}, which does not resolve to loopback here")
    tmp = tmp_path_factory.mktemp("raystart")
    home, stranger = tmp / "home", tmp / "stranger"
    home.mkdir()
    stranger.mkdir()
    # Not under tmp: Ray's socket paths must fit in 107 bytes, and pytest-xdist's folders
    # (.../popen-gw1/raystart0/ray/session_<date>_<pid>/sockets/plasma_store) do not.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    base.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    env = {**base, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", "WANDB_MODE": "disabled"}
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, check=True, timeout=60)
    port = free_port()
    try:
        # The head on loopback only (Ray's clusters-off mode binds and dials 127.0.0.1).
        _ray_start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1", "--num-gpus", "0",
                    "--include-dashboard=false", "--temp-dir", str(temp_dir)],
                   {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        # Ray refuses a second node in that mode, and, in the other, swaps the address
        # 127.0.0.1 for the machine's routable one; the machine's own name (which /etc/hosts
        # maps to loopback) it leaves alone, so the worker dials the head on loopback.
        _ray_start(["--address", f"{hostname}:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
                    "--num-gpus", "2", "--resources", '{"accelerator_type:T4": 1}'], {**env, "RAY_AUTH_MODE": "token"})
        yield f"127.0.0.1:{port}", env, {**env, "HOME": str(stranger)}
    finally:
        _kill_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _sweeper(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeper.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_a_sweep_joins_a_ray_start_cluster_and_lands_on_its_t4_node(ray_start_cluster, tiny_data, tmp_path) -> None:
    from sweeper.ledger import Ledger

    address, env, _ = ray_start_cluster
    spec = tmp_path / "joined.yaml"
    spec.write_text(spec_text("joined", tiny_data, """
  optimizer: {values: [adam, rmsprop]}
  loss: {value: mae}
""").replace("epochs: {value: 2}", "epochs: {value: 1}"))
    proc = _sweeper(["run", str(spec), "--results-dir", str(tmp_path / "r"), "--address", address], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "InvalidAuthToken" not in proc.stderr and "Traceback" not in proc.stderr
    trials = Ledger(tmp_path / "r" / "joined").trials()
    assert len(trials) == 2 and set(trials["status"]) == {"ok"}
    assert set(trials["accelerator"]) == {"T4"} and len(set(trials["node"])) == 1  # the one node with T4s


def test_a_driver_without_the_clusters_token_gets_one_line_saying_how_to_get_it(ray_start_cluster, tiny_data,
                                                                                tmp_path) -> None:
    address, _, stranger = ray_start_cluster
    spec = tmp_path / "stranger.yaml"
    spec.write_text(spec_text("stranger", tiny_data, "  optimizer: {value: adam}\n"))
    started = time.monotonic()
    proc = _sweeper(["run", str(spec), "--results-dir", str(tmp_path / "r"), "--address", address], stranger)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "InvalidAuthToken" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sweeper: error:")]
    assert errors == [f"sweeper: error: --address {address}: cannot join the Ray cluster: the head uses Ray's token "
                      "auth and this driver has no token; run `ray get-auth-token` on the head and set "
                      "RAY_AUTH_TOKEN=<token> here (or copy its ~/.ray/auth_token)"]
    assert time.monotonic() - started < 120  # Ray alone retries for many minutes
    wrong = _sweeper(["run", str(spec), "--results-dir", str(tmp_path / "r"), "--address", address],
                     {**stranger, "RAY_AUTH_TOKEN": "0" * 32})
    assert wrong.returncode == 1 and "the head refused this driver's auth token" in wrong.stderr


@pytest.mark.parametrize(("address", "what"), [
    ("127.0.0.1:", "has no port"),  # seen: a script's grep lost the port; Ray then named 192.0.2.2
    ("head:port", "has port 'port', not a port number (1-65535)"),
    ("ray://head:99999", "has port '99999', not a port number (1-65535)"),
])
def test_an_address_without_a_port_number_is_refused_before_ray_gets_it(tiny_data, tmp_path, address, what) -> None:
    from typer.testing import CliRunner

    from sweeper.cli import app

    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_text("bad", tiny_data, "  optimizer: {value: adam}\n"))
    said = (f"sweeper: error: --address {address}: the address {what}; give the head's HOST:PORT as `ray start "
            "--head` prints it (e.g. 127.0.0.1:6379), or ray://HOST:10001 for Ray Client")
    result = CliRunner().invoke(app, ["run", str(spec), "--results-dir", str(tmp_path / "r"), "--address", address])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [said], result.output
    assert not (tmp_path / "r").exists()  # refused before anything was made
    if address == "127.0.0.1:":  # the same from RAY_ADDRESS, through the driver: named as such
        env = {**os.environ, "WANDB_MODE": "disabled", "RAY_ADDRESS": address}
        proc = _sweeper(["run", str(spec), "--results-dir", str(tmp_path / "r")], env, timeout=120)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("sweeper: error:")]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert errors == [said.replace("--address", "RAY_ADDRESS", 1)], proc.stderr


def test_an_address_nobody_listens_on_fails_at_once_in_one_line(tiny_data, tmp_path) -> None:
    spec = tmp_path / "nobody.yaml"
    spec.write_text(spec_text("nobody", tiny_data, "  optimizer: {value: adam}\n"))
    port = free_port()
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = _sweeper(["run", str(spec), "--results-dir", str(tmp_path / "r"), "--address", f"127.0.0.1:{port}"], env,
                    timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sweeper: error:")]
    assert len(errors) == 1 and f"nothing answers at 127.0.0.1:{port} (Connection refused)" in errors[0]
    assert "ray start --head" in errors[0]
