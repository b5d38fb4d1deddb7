"""The sidecar's listening socket, its worker processes, signals and graceful shutdown.

One worker serves on the event loop of this process (uvloop when installed). With
``--workers N`` the socket is bound once and N processes are forked to accept on it
(pre-fork, so the kernel spreads connections and no port is shared by accident); the
parent only supervises: a worker that dies is replaced, SIGTERM/SIGINT stop them all.
Each worker builds its own Router after the fork, so no thread or connection crosses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LLMRouterError
from ..memory import map_large_allocations, return_freed_memory
from ..policy.prices import forget_price_table
from .app import ServerApp
from .protocol import ConnectionSet, HttpProtocol

__all__ = ["Timeouts", "bind", "run"]

log = logging.getLogger("llmrouter.server")

_BACKLOG = 2048
_STARTUP_GRACE_S = 3.0  # a worker that fails sooner cannot start: stop, do not loop
_YOUNG_S = 30.0  # dying younger than this counts towards the restart back-off
_MAX_RESTART_DELAY_S = 10.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket for ``host:port`` (IPv4 or IPv6, as the address resolves)."""
    found = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    # A name with both (``localhost``): IPv4, which every client can reach.
    found.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class Timeouts:
    keep_alive_s: float = 5.0  # an idle keep-alive connection closes after this
    request_timeout_s: float = 30.0  # a request must arrive whole within this
    graceful_s: float = 10.0  # on SIGTERM, requests in flight get this long to finish


def run(
    build_app: Callable[[], ServerApp],
    host: str,
    port: int,
    workers: int = 1,
    timeouts: Timeouts = Timeouts(),
) -> None:
    """Serve until SIGINT or SIGTERM."""
    if workers > 1 and not hasattr(os, "fork"):
        raise RuntimeError("--workers above 1 needs os.fork (not available on this platform)")
    sock = bind(host, port)
    where = f"http://{host}:{sock.getsockname()[1]}"
    try:
        if workers == 1:
            log.info("llmrouter serving on %s", where)
            _worker(build_app, sock, timeouts)
        else:
            log.info("llmrouter serving on %s with %d workers", where, workers)
            _supervise(build_app, sock, workers, timeouts)
    finally:
        sock.close()


def _worker(build_app: Callable[[], ServerApp], sock: socket.socket, timeouts: Timeouts) -> None:
    map_large_allocations()
    app = build_app()
    # One routing decision (no call) builds what is built on first use (the predictor's
    # tables, the tokenizer's caches), so the first request is not slow; then the memory
    # start-up allocated and dropped goes back to the system (~15 MB).
    app.router.route([{"role": "user", "content": "Warm-up: is the router ready?"}])
    forget_price_table()  # the policy is loaded: nothing reads the price table again
    return_freed_memory()
    # What start-up built lives as long as the process: out of the collector's sight, so a
    # full collection walks only what requests allocate (shorter pauses at p99).
    gc.freeze()
    main = _serve(app, sock, timeouts)
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


async def _serve(app: ServerApp, sock: socket.socket, timeouts: Timeouts) -> None:
    loop = asyncio.get_running_loop()
    connections = ConnectionSet(timeouts.keep_alive_s, timeouts.request_timeout_s)
    server = await loop.create_server(
        lambda: HttpProtocol(app, connections), sock=sock, backlog=_BACKLOG
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        try:
            server.close()
            connections.stop()
            if not await connections.drained(timeouts.graceful_s):
                log.warning(
                    "%d connection(s) still busy after %.0f s; closing them",
                    len(connections.open),
                    timeouts.graceful_s,
                )
                connections.abort()
        finally:
            await app.aclose()  # the ledger and the cache are flushed whatever happened


def _supervise(
    build_app: Callable[[], ServerApp],
    sock: socket.socket,
    workers: int,
    timeouts: Timeouts,
) -> None:
    started: dict[int, float] = {}
    stopping = failed = False
    quick_deaths = 0

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _worker(build_app, sock, timeouts)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        started[pid] = time.monotonic()

    def stop_all(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    for _ in range(workers):
        spawn()
    while started:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        born = started.pop(pid, None)
        if stopping or born is None:
            continue
        code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
        if code > 0 and time.monotonic() - born < _STARTUP_GRACE_S:
            log.error("worker %d failed while starting (exit code %d); stopping", pid, code)
            failed = True
            stop_all(signal.SIGTERM, None)
            continue
        # A worker that keeps dying young (a crash on some input, the OOM killer) is
        # replaced ever more slowly, so the supervisor never spins on fork.
        quick_deaths = quick_deaths + 1 if time.monotonic() - born < _YOUNG_S else 0
        delay = min(0.1 * 2**quick_deaths, _MAX_RESTART_DELAY_S) if quick_deaths else 0.0
        log.warning("worker %d exited (code %d); starting another in %.1f s", pid, code, delay)
        time.sleep(delay)
        if not stopping:
            spawn()
    if failed:
        raise LLMRouterError("a worker could not start; see the log above")
