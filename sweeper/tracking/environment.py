"""What the environment says about W&B: the mode a sweep tracks in, the project its runs go
to, and the API key that must never reach a message.

``wandb`` is imported inside :func:`resolve_mode` only, to ask it for credentials.
"""

from __future__ import annotations

import logging
import os

from model.errors import ConfigError, suggest

__all__ = ["MODES", "default_project", "redact", "resolve_mode"]

# The package's logger: the tracking stage warns as one (`sweeper.tracking`), whichever module.
_log = logging.getLogger(__package__)

MODES = ("online", "offline", "disabled")
# wandb's own legacy spellings of WANDB_MODE, accepted so an existing environment keeps working.
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}
_DEFAULT_PROJECT = "sweeper"


def resolve_mode(requested: str | None = None) -> str:
    """Decide the W&B mode for a sweep: ``"online"``, ``"offline"`` or ``"disabled"``.

    Precedence: ``requested`` (the CLI's ``--wandb-mode``), then the ``WANDB_MODE``
    environment variable, then ``"online"`` if W&B finds credentials without network
    access (``WANDB_API_KEY``, an identity token file, a netrc entry, the settings file) and
    ``"offline"`` otherwise.

    Args:
        requested: The value of ``--wandb-mode``, or None when not given.

    Returns:
        One of ``"online"``, ``"offline"``, ``"disabled"``.

    Raises:
        ConfigError: ``requested`` or ``WANDB_MODE`` is not a valid mode.
    """
    if requested is not None:
        return _valid_mode(requested, "--wandb-mode")
    env = os.environ.get("WANDB_MODE", "").strip()
    if env:
        return _valid_mode(env, "WANDB_MODE")
    return "online" if _has_credentials() else "offline"


def _valid_mode(value: str, source: str) -> str:
    mode = str(value).strip().lower()
    mode = _MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        hint = "" if source == "--wandb-mode" else " (or pass --wandb-mode)"
        raise ConfigError(
            f"{source}: unknown W&B mode {value!r}{suggest(mode, MODES)}; "
            f"--wandb-mode takes one of {', '.join(MODES)}{hint}"
        )
    return mode


def _has_credentials() -> bool:
    """Whether wandb would find credentials, asked the way ``wandb.init`` asks, without network.

    wandb 0.31 looks at WANDB_API_KEY / WANDB_IDENTITY_TOKEN_FILE, then the netrc entry for
    its base URL (the default is the Forge proxy, whose netrc lookup falls back to
    api.wandb.ai), then the settings file. A hand-written netrc check would miss those rules.
    """
    try:
        from wandb.errors import AuthenticationError
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth
    except ImportError as err:  # wandb missing or its internals moved: nothing to go online with
        _log.warning("W&B credentials could not be checked (%s); tracking offline", err)
        return False
    try:
        base_url = wandb_setup.singleton().settings.base_url
        auth = wbauth.authenticate_session(
            host=base_url, source="sweeper", prompt=False, verify=False, update_session=False,
        )
    except AuthenticationError as err:  # e.g. a mistyped key: offline runs can be synced later
        _log.warning("W&B credentials are not usable (%s); tracking offline", redact(str(err)))
        return False
    except Exception as err:  # noqa: BLE001 - a lookup problem must not stop a sweep
        _log.warning("W&B credentials could not be checked (%s); tracking offline", redact(str(err)))
        return False
    return auth is not None


def default_project() -> str:
    """The W&B project runs and sweeps go to: ``WANDB_PROJECT``, else ``"sweeper"``."""
    return os.environ.get("WANDB_PROJECT") or _DEFAULT_PROJECT


def redact(text: str) -> str:
    """``text`` without the API key: wandb's errors sometimes echo their input."""
    key = os.environ.get("WANDB_API_KEY")
    return text.replace(key, "***") if key else text
