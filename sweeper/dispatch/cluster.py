"""The Ray cluster a sweep runs on: joining it (or starting a private local one) and pinning
each trial's resources to the accelerator the spec asks for."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Mapping, Sequence

from model.errors import ConfigError, UserError
from model.runtime import NATIVE_CPU_FLAGS, VERBOSE_ENV, cpu_emulates
from sweeper.spec import Resources, SweepSpec

__all__ = ["LOCAL_HOST", "DriverNode", "check_address", "cluster_address", "connect", "driver_node",
           "emulated_precision_warning", "local_cpu_warning", "other_drivers", "pin_resources"]

LOCAL_HOST = "127.0.0.1"


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: ``address``, else ``RAY_ADDRESS``; ``None``: a private local Ray."""
    return address or os.environ.get("RAY_ADDRESS") or None


def connect(address: str | None) -> None:
    """Join ``address`` / ``RAY_ADDRESS`` (a cluster made by ``ray start``, or ``ray://`` for
    Ray Client), or start a private local Ray bound to 127.0.0.1.

    Joining: a loopback address is kept on loopback (Ray would otherwise swap 127.0.0.1 for
    the machine's routable address and miss a head listening on loopback); the head's port is
    tried first, so an address nobody listens on fails at once; a head that refuses a driver
    without a token is joined in token mode when a token is at hand (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``, as Ray reads them) and ``RAY_AUTH_MODE``
    does not say otherwise.

    Raises:
        UserError: the cluster cannot be joined: one line naming the address, the cause and
            the fix (Ray's own retry warnings are kept off the terminal).
    """
    address = cluster_address(address)
    host, port = _host_port(address) if address is not None else (LOCAL_HOST, None)
    if address is None or host in _LOOPBACK:
        # Ray otherwise binds (or, joining, dials) the machine's routable IP; with clusters
        # "disabled" it keeps to loopback. Read by Ray at import, so set it first.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune's newer console output prints an experiment box and a TensorBoard hint for every
    # Tuner whatever RunConfig(verbose=0) says; the sweeper has its own progress bar.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address is None:
        # Token auth on, as Ray does for a new local cluster, but said so explicitly: Ray
        # prints a line about it on every start otherwise.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    if ray.is_initialized():
        return
    if address is None:
        # address="local": always a new private instance, never a stray cluster that
        # /tmp/ray/ray_current_cluster happens to point at.
        ray.init(address="local", include_dashboard=False, _node_ip_address=LOCAL_HOST,
                 log_to_driver=_verbose(), configure_logging=False)
        return
    if port is not None:
        _probe(address, host, port)
    # The driver's auth mode must be the head's: a driver in token mode joins a head without
    # auth, but that head's workers are then refused by the driver, and no trial starts. A
    # driver given an address never looks for a token (Ray 2.60), while `ray start` turns
    # token auth on whenever it finds one: so join as Ray would, and on a token refusal,
    # with a token at hand and RAY_AUTH_MODE unset, join again in token mode.
    guess = "RAY_AUTH_MODE" not in os.environ and _token_at_hand()
    said, reason = _join(ray, address, attempts=_FIRST_ATTEMPTS if guess else _JOIN_ATTEMPTS)
    refused = "InvalidAuthToken" in said or "Unauthenticated" in said
    if reason and refused and guess:
        _token_mode()
        said, reason = _join(ray, address, attempts=_JOIN_ATTEMPTS)
        refused = "InvalidAuthToken" in said or "Unauthenticated" in said
    if not reason:
        return
    if refused:
        if _token_at_hand():
            reason = ("the head refused this driver's auth token; use the head's: `ray get-auth-token` "
                      "there, then RAY_AUTH_TOKEN=<token> here")
        else:
            reason = ("the head uses Ray's token auth and this driver has no token; run `ray get-auth-token` "
                      "on the head and set RAY_AUTH_TOKEN=<token> here (or copy its ~/.ray/auth_token)")
    raise UserError(f"--address {address}: cannot join the Ray cluster: {reason}")


def _join(ray: Any, address: str, *, attempts: int) -> tuple[str, str]:
    """One ``ray.init`` on ``address``: ("", "") when joined, else (what Ray logged, why it failed)."""
    # Ray tries to reach a head 20 times, for up to a minute each when it refuses: bound it.
    os.environ["RAY_gcs_server_port_wait_time_s"] = str(attempts)
    with _stderr_aside() as aside:
        try:
            ray.init(address=address, log_to_driver=_verbose(), configure_logging=False)
            return "", ""
        except (ConnectionError, RuntimeError, ValueError) as err:
            return aside.read(), (str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)


def _token_mode() -> None:
    """Token auth on for this process, the way Ray's own ``ray.init()`` turns it on."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
    except ImportError:  # a Ray without it reads the variable at its next start
        return
    _enable_token_auth()


_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_PROBE_S = 5.0
_JOIN_ATTEMPTS = 20  # about a second each when the head refuses the driver's token
_FIRST_ATTEMPTS = 2  # a join without a token, when one is at hand: a head with auth refuses at once


def check_address(address: str, name: str = "--address") -> None:
    """Refuse an address whose port is missing or no port number (``127.0.0.1:``, ``head:port``,
    ``head:99999``), before Ray gets it: Ray's own message names the machine's routable
    address instead of the one given. ``auto``, a bare host and ``ray://`` pass through.

    Raises:
        ConfigError: one line naming ``name``, the address and the fix.
    """
    rest = address.split("://", 1)[-1]
    if ":" not in rest or rest.endswith("]"):  # auto, a bare host, a bare [IPv6]
        return
    port = rest.rpartition(":")[2]
    if port.isdigit() and 0 < int(port) < 65536:
        return
    what = "has no port" if not port else f"has port {port!r}, not a port number (1-65535)"
    raise ConfigError(f"{name} {address}: the address {what}; give the head's HOST:PORT as `ray start --head` "
                      "prints it (e.g. 127.0.0.1:6379), or ray://HOST:10001 for Ray Client")


def _host_port(address: str) -> tuple[str, int | None]:
    """``ray://head:10001`` or ``head:6379`` -> (host, port); no port for a bare ``auto``."""
    rest = address.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return rest, None
    return host.strip("[]"), int(port)


def _token_at_hand() -> bool:
    """Whether Ray would find an auth token here (the places it looks, in its order)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).is_file() if path else (Path.home() / ".ray" / "auth_token").is_file()


def _probe(address: str, host: str, port: int) -> None:
    """Fail at once, in one line, when nothing listens at the address (Ray retries for a minute)."""
    try:
        with socket.create_connection((host, port), timeout=_PROBE_S):
            return
    except OSError as err:
        why = err.strerror or type(err).__name__.replace("Error", "").lower() or str(err)
    raise UserError(f"--address {address}: cannot join the Ray cluster: nothing answers at {host}:{port} ({why}); "
                    "is `ray start --head` running there, and is this its GCS port (6379 unless --port)?")


class _Aside:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def read(self) -> str:
        self.handle.flush()
        self.handle.seek(0)
        return self.handle.read().decode(errors="replace")


@contextlib.contextmanager
def _stderr_aside() -> Iterator[_Aside]:
    """File descriptor 2 into a temp file for the block: Ray's C++ client logs a warning a second
    while it retries a head that refuses it, and the user is owed one line, not a screen."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as handle:
        os.dup2(handle.fileno(), 2)
        try:
            yield _Aside(handle)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def pin_resources(wanted: Resources, cluster: Mapping[str, float]) -> tuple[dict[str, float], str | None]:
    """Per-trial Ray resources for the spec's ``resources`` block on this cluster.

    Where the cluster advertises ``accelerator_type:<T>``, a trial asks for ``GPU`` plus a
    sliver of that custom resource, which pins it to such a node. With no such GPU,
    ``fallback: cpu`` runs on CPU (returned warning says so) and ``fallback: none`` refuses.

    Returns:
        (resources for ``tune.with_resources``, a warning or ``None``).

    Raises:
        ConfigError: no such GPU and ``fallback: none`` (the message lists what the cluster has).
    """
    cpu = {"cpu": float(wanted.cpu)}
    if not wanted.gpu:
        return cpu, None
    if wanted.accelerator_type:
        key = f"accelerator_type:{wanted.accelerator_type}"
        if cluster.get(key, 0) > 0 and cluster.get("GPU", 0) >= wanted.gpu:
            return {**cpu, "gpu": float(wanted.gpu), key: 0.001}, None
        missing = f"no {wanted.accelerator_type} GPU"
    elif cluster.get("GPU", 0) >= wanted.gpu:
        return {**cpu, "gpu": float(wanted.gpu)}, None
    else:
        missing = "no GPU"
    have = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items()) if not k.startswith("node:"))
    if wanted.fallback == "none":
        raise ConfigError(
            f"sweeper.resources: the cluster has {missing} and fallback is 'none'; "
            f"cluster resources: {have}; set sweeper.resources.fallback: cpu to run on CPU"
        )
    return cpu, f"the cluster has {missing}; running trials on CPU (sweeper.resources.fallback: cpu)"


def emulated_precision_warning(precisions: Iterable[str], cpu_flags: Collection[str] | None = None) -> str | None:
    """A warning when the spec's ``precision`` values include a 16-bit policy this machine's
    CPU (``cpu_flags``; ``None`` reads it) has no native arithmetic for, else ``None``.

    Said before any trial runs on it: such trials run no faster than float32 there
    (:func:`model.runtime.accumulates_in_float32`), while a CPU with native 16-bit arithmetic
    runs bf16 1.6-2x faster; a sweep's pace and its precision's point depend on the CPU.
    """
    slow = sorted({p for p in precisions if cpu_emulates(p, cpu_flags)})
    if not slow:
        return None
    flags = " or ".join(flag for policy in slow for flag in NATIVE_CPU_FLAGS[policy])
    return (f"parameters.precision: {' and '.join(slow)} on this CPU, which has no {flags} in /proc/cpuinfo: "
            "16-bit convolutions compute in float32 here and round once (native hardware's arithmetic), at about "
            "float32's speed, not faster (bf16 0.92x, fp16 0.87x in benchmarks/README.md); "
            "use precision: auto (float32 on such a CPU) or a machine that has them")


def local_cpu_warning(spec: SweepSpec, address: str | None, cpu_flags: Collection[str] | None = None) -> str | None:
    """:func:`emulated_precision_warning` for ``spec``'s precision values when its CPU trials
    would train on this machine (a private local Ray); ``None`` when the sweep joins a cluster
    (``address`` or ``RAY_ADDRESS``), whose CPUs are not this one."""
    if cluster_address(address) is not None:
        return None
    precision = spec.param("precision")
    return emulated_precision_warning(precision.choices if precision is not None else (), cpu_flags)


@dataclass(frozen=True)
class DriverNode:
    """The Ray processes a driver cannot outlive, for a supervisor to watch.

    Attributes:
        ip: The address of the node the driver is attached to.
        gcs_address: The cluster's GCS (``host:port``): its head.
        raylet_pid: That node's raylet, when it runs on this host (it does unless Ray Client).
        gcs_pid: The GCS server, when the head runs on this host (a local Ray's always does).
    """

    ip: str = ""
    gcs_address: str = ""
    raylet_pid: int | None = None
    gcs_pid: int | None = None


def driver_node() -> DriverNode:
    """The node this (connected) driver uses and its cluster's head, found among this host's
    processes by the raylet's socket and the head's session, which their command lines name."""
    import ray

    try:
        context = ray.get_runtime_context()
        node_id, gcs_address = context.get_node_id(), str(context.gcs_address)
        info = next((n for n in ray.nodes() if n.get("NodeID") == node_id), {})
    except Exception:  # noqa: BLE001 - Ray Client, or a cluster already failing: nothing to watch
        return DriverNode()
    raylet_socket = str(info.get("RayletSocketName") or "")
    # <temp>/session_<stamp>/sockets/raylet: the head's GCS names the same session
    session = Path(raylet_socket).parent.parent.name if raylet_socket else ""
    raylet_pid = gcs_pid = None
    for pid, argv in _processes():
        if raylet_socket and f"--raylet_socket_name={raylet_socket}" in argv:
            raylet_pid = pid
        elif session and argv[0].endswith("gcs_server") and f"--session-name={session}" in argv:
            gcs_pid = pid
    return DriverNode(ip=str(info.get("NodeManagerAddress") or ""), gcs_address=gcs_address,
                      raylet_pid=raylet_pid, gcs_pid=gcs_pid)


def other_drivers() -> list[str]:
    """The other drivers on this (connected) driver's Ray cluster now, each as ``pid 13129 on
    127.0.0.1``: the live jobs of the cluster's job table but this one. None when the table
    cannot be read (Ray Client, a cluster failing)."""
    import ray

    try:
        from ray._private import state  # the job table; Ray's public job API needs its dashboard

        me = ray.get_runtime_context().get_job_id()
        jobs = state.jobs()
    except Exception:  # noqa: BLE001 - nothing can be said: nothing to wait for
        return []
    return [f"pid {job['DriverPid']} on {job['DriverIPAddress']}" for job in jobs
            if not job.get("IsDead") and job.get("JobID") != me]


def drivers_still_on_it(others: Sequence[str]) -> str:
    """``the driver still on it`` or ``the 2 drivers still on it``: whom a done sweep keeps its
    Ray cluster up for (:func:`other_drivers`), said alike by its driver and ``sweeper status``."""
    return "the driver still on it" if len(others) == 1 else f"the {len(others)} drivers still on it"


def _processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, argv) of this host's processes, from /proc (none where there is no /proc)."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if argv and argv[0]:
            yield int(entry.name), argv


def _verbose() -> bool:
    """``sweeper --verbose``: the workers' own output (TensorFlow's, Ray's) reaches the terminal."""
    return bool(os.environ.get(VERBOSE_ENV))
