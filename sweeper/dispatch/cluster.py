"""The Ray cluster a sweep runs on: joining it (or starting a private local one) and pinning
each trial's resources to the accelerator the spec asks for."""

from __future__ import annotations

import os
from typing import Mapping

from model.errors import ConfigError, UserError
from sweeper.spec import Resources

__all__ = ["LOCAL_HOST", "connect", "pin_resources"]

LOCAL_HOST = "127.0.0.1"


def connect(address: str | None) -> None:
    """Join ``address`` / ``RAY_ADDRESS``, or start a local Ray bound to 127.0.0.1.

    Raises:
        UserError: the cluster cannot be joined (one line naming the address and the cause).
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # Ray otherwise binds the machine's routable IP and opens its ports to the network;
        # with clusters "disabled" it uses loopback. Read by Ray at import, so set it first.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    try:
        if address is None:
            # address="local": always a new private instance, never a stray cluster that
            # /tmp/ray/ray_current_cluster happens to point at.
            ray.init(address="local", include_dashboard=False, _node_ip_address=LOCAL_HOST, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise UserError(f"--address {address}: cannot join the Ray cluster ({str(err).splitlines()[0]})") from None


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

