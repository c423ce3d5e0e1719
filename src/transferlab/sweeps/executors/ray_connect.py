"""The Ray executor's driver side before any run: import ray (an optional extra), connect to
the cluster, and refuse a registry the cluster's nodes cannot reach.

Address: `auto` (a cluster started on this machine with `ray start`), `HOST:PORT` (its GCS),
`ray://HOST:PORT` (Ray Client), or none: Ray's own rule (RAY_ADDRESS, else a local Ray
started for this sweep and stopped with it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from transferlab.errors import TransferlabError

INSTALL_FIX = "Install the extra: pip install -e '.[ray]' (or pip install 'transferlab[ray]')."
CONNECT_TIMEOUT_S = 5.0
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_owned = False  # this module connected the process (and disconnects it)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise TransferlabError(
            f"The ray executor needs the ray package, which is not installed ({exc}).",
            INSTALL_FIX,
        ) from exc
    return ray


def check_address(address: Any) -> None:
    """A usable `address` setting (None, 'auto', 'HOST:PORT' or 'ray://HOST:PORT')."""
    if address is None or address == "auto":
        return
    if not isinstance(address, str) or not _host_port(address):
        raise TransferlabError(
            f"Ray address {address!r} is not auto, HOST:PORT or ray://HOST:PORT.",
            "Give the head node's address, e.g. --ray-address 10.0.0.5:6380 (what `ray start "
            "--head` printed), or auto for a cluster on this machine.",
        )


def _host_port(address: str) -> tuple[str, int] | None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def connect(address: str | None) -> None:
    """Connect this process to the cluster at `address` unless it already is (by this module:
    `disconnect` ends it; or by the caller's own `ray.init`: left alone). A cluster that does
    not answer is refused at once, with the address."""
    global _owned
    ray = import_ray()
    if ray.is_initialized():
        return
    check_address(address)
    if address not in (None, "auto"):
        _reachable(address)
    # ray.init sets its own SIGTERM handler (exit at once): the sweep's must stay, so a
    # SIGTERM interrupts the sweep and its runs are recorded as interrupted.
    previous = _sigterm_handler()
    try:
        ray.init(
            address=address,
            logging_level="ERROR",
            log_to_driver=False,
            include_dashboard=False if address is None else None,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise TransferlabError(
            f"Cannot connect to the Ray cluster at {address or 'RAY_ADDRESS / a local Ray'}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}.",
            "Start it (`ray start --head --port PORT`) or give its address with --ray-address "
            "HOST:PORT (or executor: {name: ray, address: HOST:PORT} in the sweep file).",
        ) from exc
    finally:
        _restore_sigterm(previous)
    _owned = True


def disconnect() -> None:
    """End the connection `connect` made (a local Ray it started stops with it)."""
    global _owned
    if _owned:
        _owned = False
        import_ray().shutdown()


def _reachable(address: str) -> None:
    found = _host_port(address)
    assert found is not None  # checked by check_address
    host, port = found
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as exc:
        raise TransferlabError(
            f"No Ray cluster answers at {address} ({exc.strerror or exc}).",
            "Start the head node (`ray start --head --port PORT`) or correct --ray-address "
            "(HOST:PORT of the head's GCS, as `ray start --head` printed it).",
        ) from exc


def _sigterm_handler() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)


def node_hosts(ray: Any) -> list[tuple[str, str]]:
    """(host name, IP address) of every node alive in the cluster."""
    return [
        (str(node.get("NodeManagerHostname", "")), str(node.get("NodeManagerAddress", "")))
        for node in ray.nodes()
        if node.get("Alive")
    ]


def check_registry_reach(location: str, nodes: list[tuple[str, str]]) -> None:
    """Refuse a registry that some node cannot reach: a DuckDB file (only processes on this
    machine can open it) or a server named by a loopback address, when a node is elsewhere."""
    here = socket.gethostname()
    elsewhere = sorted({f"{host} ({ip})" for host, ip in nodes if host != here})
    if not elsewhere:
        return
    scheme = urlsplit(location).scheme.lower()
    server = scheme.startswith(("postgres", "http"))
    if not server:
        raise TransferlabError(
            f"The sweep's registry is a DuckDB file ({location}), which only this machine can "
            f"open, but the Ray cluster has nodes on other machines: {', '.join(elsewhere)}.",
            "Use a registry every node can reach: PostgreSQL (--registry "
            "postgresql://USER@HOST:5432/DB) or the registry service (`transferlab serve`, then "
            "--registry http://HOST:PORT).",
        )
    host = urlsplit(location).hostname or ""
    if _loopback(host):
        raise TransferlabError(
            f"The sweep's registry {urlsplit(location)._replace(netloc=host).geturl()} is on "
            f"this machine's loopback address, which nodes on other machines "
            f"({', '.join(elsewhere)}) cannot reach.",
            "Give the registry by an address the nodes can reach (this machine's host name or "
            "network address) in --registry.",
        )


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(options: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TransferlabError(
            f"The ray executor has no setting {', '.join(map(repr, unknown))}.",
            f"Its settings: {', '.join(known)} (e.g. executor: {{name: ray, address: "
            "'10.0.0.5:6380', max_retries: 2}).",
        )
    check_address(options.get("address"))
    retries = options.get("max_retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise TransferlabError(
            f"The ray executor's max_retries must be a whole number of 0 or more, not {retries!r}.",
            "Give e.g. max_retries: 2 (how often a run whose worker or node died runs again).",
        )
