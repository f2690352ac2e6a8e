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
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import threading
from multiprocessing.context import SpawnProcess
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("mnist_api")
STOP_TIMEOUT_S = 30.0

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


def _serve(config: uvicorn.Config, sock: socket.socket) -> None:
    """A worker: uvicorn's server on its own socket (runs in the child)."""
    config.configure_logging()
    # Ctrl-C reaches the whole process group: the parent stops the workers in order.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


class Workers:
    """``count`` uvicorn workers, each on its own socket of one ``SO_REUSEPORT`` group."""

    def __init__(self, config: uvicorn.Config, count: int) -> None:
        self._config = config
        self._sockets = reuse_port_sockets(config.host, config.port, count)
        self._processes: list[SpawnProcess] = []
        self._stop = threading.Event()

    def _start(self, index: int) -> SpawnProcess:
        process = _spawn.Process(
            target=_serve, args=(self._config, self._sockets[index]), name=f"worker-{index}"
        )
        process.start()
        return process

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
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
                process.terminate()  # SIGTERM: uvicorn finishes what it is answering
        for process in self._processes:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        for sock in self._sockets:
            sock.close()
