"""Worker processes that share the load on purpose: one listening socket per worker.

Uvicorn's own ``--workers`` binds one socket and hands it to every worker; the kernel then gives
each new connection to whichever worker calls ``accept`` first, and with a fixed set of
keep-alive clients the split is luck (measured at 64 connections: 16/48, or 64/0 with one worker
idle). Here the parent binds one socket per worker, all on the same address with
``SO_REUSEPORT``, and each worker accepts only on its own: Linux spreads new connections over the
sockets by a hash of the client's address and port, so every worker gets its share.

The parent only supervises: it starts the workers (fresh interpreters, as uvicorn does), replaces
one that dies, and stops them all on SIGINT or SIGTERM. It keeps every socket open, so the
connections that arrive while a worker is being replaced wait on that worker's socket instead of
being refused. A worker that fails to start (a bad model, an unreachable store) stops the whole
server with uvicorn's start-up failure status, as a single worker would.

On SIGTERM each worker drains (``kernel.drain``): the parent passes the signal on at once and
lets go of its copies of the sockets, so that each closes when its worker stops listening.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from mnist_api.kernel.drain import Drain, DrainingServer

log = logging.getLogger("mnist_api")
# Beyond the grace period, how long a worker gets to close its store before it is killed.
STOP_MARGIN_S = 5.0
AppFactory = Callable[..., Any]  # an ASGI app factory, run in the worker; module-level to pickle

multiprocessing.allow_connection_pickling()  # a socket travels to its worker
_spawn = multiprocessing.get_context("spawn")


def reuse_port_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` in one ``SO_REUSEPORT`` group (with port 0,
    the port the first one gets)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _serve(
    config: uvicorn.Config, factory: AppFactory, sock: socket.socket, drain_delay_s: float
) -> None:
    """A worker: uvicorn's server on its own socket (runs in the child)."""
    config.configure_logging()
    drain = Drain()
    config.app = functools.partial(factory, drain=drain)
    # Ctrl-C reaches the whole process group: the parent stops the workers in order.
    with contextlib.suppress(KeyboardInterrupt):
        DrainingServer(config, drain, drain_delay_s).run(sockets=[sock])


class Workers:
    """``count`` uvicorn workers, each on its own socket of one ``SO_REUSEPORT`` group, each
    serving the app ``factory`` makes (given the worker's ``Drain`` as ``drain``)."""

    def __init__(
        self,
        config: uvicorn.Config,
        factory: AppFactory,
        count: int,
        *,
        drain_delay_s: float,
        grace_period_s: float,
    ) -> None:
        self._config = config
        self._factory = factory
        self._drain_delay_s = drain_delay_s
        self._grace_period_s = grace_period_s
        self._sockets = reuse_port_sockets(config.host, config.port, count)
        self._processes: list[SpawnProcess] = []
        self._stop = threading.Event()

    def _start(self, index: int) -> SpawnProcess:
        process = _spawn.Process(
            target=_serve,
            args=(self._config, self._factory, self._sockets[index], self._drain_delay_s),
            name=f"worker-{index}",
        )
        process.start()
        return process

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM and not self._stop.is_set():
            for process in self._processes:  # at once: each worker's readiness turns 503
                if process.is_alive():
                    process.terminate()
        self._stop.set()

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; the exit status for the command."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        status = 0
        try:
            self._processes = [self._start(i) for i in range(len(self._sockets))]
            while not self._stop.is_set():
                sentinels = [p.sentinel for p in self._processes]
                multiprocessing.connection.wait(sentinels, timeout=0.5)
                for index, process in enumerate(self._processes):
                    if process.is_alive() or self._stop.is_set():
                        continue
                    process.join()
                    if process.exitcode == STARTUP_FAILURE:
                        log.error("a worker failed to start; stopping the server")
                        status = STARTUP_FAILURE
                        self._stop.set()
                        break
                    log.warning(
                        "worker %d (pid %s) exited with status %s; starting another",
                        index,
                        process.pid,
                        process.exitcode,
                    )
                    self._processes[index] = self._start(index)
        finally:
            self._shut_down()
        return status

    def _shut_down(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains
        # The workers hold the sockets until they stop listening; no replacement will need them.
        for sock in self._sockets:
            sock.close()
        deadline = time.monotonic() + self._grace_period_s + STOP_MARGIN_S
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
