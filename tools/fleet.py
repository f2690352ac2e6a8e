"""Several instances of the service behind HAProxy, on one machine (``scripts/fleet``).

    scripts/fleet [--instances 2] [--workers 1] [--port 8000] [--first-port 8101] [--dir DIR]

HAProxy (Debian's package) listens on 127.0.0.1:PORT and spreads requests round-robin over N
``mnist-api serve`` processes on FIRST_PORT, FIRST_PORT + 1, ..., each checked on ``/readyz``
every half second: one failed check takes an instance out of rotation, two good ones bring it
back. A request whose connection to an instance fails, or that gets no answer at all, is sent to
another. Every request gets an ``X-Request-ID`` at the balancer (unless the client sent one),
which HAProxy's log (``DIR/haproxy.log``) and the instances' logs (``DIR/instance-N.log``) share.

The instances take their settings from the environment, as one would (``MNIST_API_STORE``, the
Cassandra contact points, ...), plus what the fleet sets: the port, ``MNIST_API_INSTANCES`` (each
instance enforces its share, 1/N, of a key's rate and burst), ``MNIST_API_PUBLIC_URL`` (the
balancer's address, for the spec) and, unless given, ``MNIST_API_DRAIN_DELAY_S=2`` (on SIGTERM an
instance keeps taking connections for longer than HAProxy takes to notice it going).

Signals: SIGHUP restarts the instances one at a time (a rolling restart: one drains and starts
again, and the next goes only once HAProxy has the new one back in rotation); SIGTERM or SIGINT
stops the fleet, every instance draining. Lines on standard output say what happens; ``fleet
ready``, ``rolling restart done`` and ``fleet stopped`` mark the steps.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

CHECK_INTERVAL_MS = 500
DRAIN_DELAY_S = "2"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


def say(message: str) -> None:
    print(f"fleet: {message}", flush=True)


def haproxy_config(
    bind: str,
    servers: list[tuple[str, str]],
    *,
    stats_socket: Path | None = None,
    resolvers: bool = False,
) -> str:
    """HAProxy's configuration: ``bind`` the balancer's address, ``servers`` (name, address)
    the instances; ``resolvers``: look instances up again in Docker's DNS (compose)."""
    check = "check resolvers docker init-addr last,libc,none" if resolvers else "check"
    lines = "\n".join(f"    server {name} {address} {check}" for name, address in servers)
    stats = f"    stats socket {stats_socket} mode 600 level admin\n" if stats_socket else ""
    dns = "resolvers docker\n    nameserver docker 127.0.0.11:53\n\n" if resolvers else ""
    return f"""\
global
    log stdout format raw local0 info
{stats}    maxconn 4096

{dns}defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    # A request whose connection fails, or that gets no answer at all (a connection an instance
    # closed as the request arrived), goes to another instance.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend api
    bind {bind}
    option forwardfor
    unique-id-format %[uuid()]
    http-request set-header X-Request-ID %[unique-id] unless {{ req.hdr(X-Request-ID) -m found }}
    http-request capture req.hdr(X-Request-ID) len 128
    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter {CHECK_INTERVAL_MS}ms fall 1 rise 2
{lines}
"""


def compose_config() -> str:
    """``deploy/haproxy/haproxy.cfg``, for compose's fleet profile: the addresses come from the
    environment (``BIND``, ``API_1``, ``API_2``; the image sets them for compose's network)."""
    servers = [("api-1", '"${API_1}"'), ("api-2", '"${API_2}"')]
    header = (
        "# HAProxy for compose.yaml's fleet profile, made by `scripts/fleet --compose-config`\n"
        "# (the same settings as scripts/fleet's); addresses from BIND, API_1 and API_2.\n"
    )
    return header + haproxy_config('"${BIND}"', servers, resolvers=True)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise SystemExit("fleet: HAProxy is not installed (apt-get install haproxy)")
    return found


class Stopping(Exception):
    """Asked to stop while waiting for an instance."""


@dataclass
class Instance:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "mnist_api", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        log.close()

    def stop(self) -> int:
        """SIGTERM (the instance drains); its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass
class Balancer:
    config: Path
    stats_socket: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(self.config)], stdout=log, stderr=log
        )
        log.close()

    def states(self) -> dict[str, str]:
        """Each instance's status as HAProxy sees it (UP, DOWN, ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().lstrip("# ").splitlines()
        return {
            row["svname"]: row["status"]
            for row in csv.DictReader(lines)
            if row.get("pxname") == "instances" and row["svname"] not in ("BACKEND", "FRONTEND")
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(STOP_TIMEOUT_S)


@dataclass
class Fleet:
    port: int
    instances: list[Instance]
    balancer: Balancer
    _restart: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def wait_in_rotation(self, names: list[str]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            for instance in self.instances:
                assert instance.process is not None
                if instance.process.poll() is not None:
                    raise SystemExit(
                        f"fleet: {instance.name} exited with status {instance.process.returncode}"
                        f"; see {instance.log_path}"
                    )
            try:
                states = self.balancer.states()
            except OSError:
                states = {}
            if all(states.get(name) == "UP" for name in names):
                return
            if self._stop.is_set():
                raise Stopping
            if time.monotonic() > deadline:
                raise SystemExit(f"fleet: not in rotation in time: {states}")
            time.sleep(0.2)

    def start(self) -> None:
        self.balancer.start()
        for instance in self.instances:
            instance.start()
        self.wait_in_rotation([i.name for i in self.instances])
        say(f"fleet ready: http://127.0.0.1:{self.port} ({len(self.instances)} instances)")

    def rolling_restart(self) -> None:
        began = time.monotonic()
        for instance in self.instances:
            stopped = time.monotonic()
            status = instance.stop()
            instance.start()
            self.wait_in_rotation([instance.name])
            say(
                f"{instance.name} restarted (exit status {status}), back in rotation after "
                f"{time.monotonic() - stopped:.1f} s"
            )
        say(f"rolling restart done in {time.monotonic() - began:.1f} s")

    def stop(self) -> None:
        threads = [threading.Thread(target=i.stop) for i in self.instances if i.process]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.balancer.stop()
        say("fleet stopped")

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._restart.set()
        else:
            self._stop.set()

    def run(self) -> None:
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        try:
            self.start()
            while not self._stop.is_set():
                if self._restart.wait(0.2):
                    self._restart.clear()
                    say("rolling restart")
                    self.rolling_restart()
                for instance in self.instances:
                    assert instance.process is not None
                    if instance.process.poll() is not None and not self._stop.is_set():
                        say(f"{instance.name} exited ({instance.process.returncode}); starting it")
                        instance.start()
        except Stopping:
            pass
        finally:
            self.stop()


def build(args: argparse.Namespace) -> Fleet:
    folder = Path(args.dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    base = dict(os.environ)
    base.setdefault("MNIST_API_DRAIN_DELAY_S", DRAIN_DELAY_S)
    base.setdefault("MNIST_API_PUBLIC_URL", f"http://127.0.0.1:{args.port}")
    base |= {
        "MNIST_API_HOST": "127.0.0.1",
        "MNIST_API_WORKERS": str(args.workers),
        "MNIST_API_INSTANCES": str(args.instances),
    }
    instances = [
        Instance(
            name=f"instance-{n + 1}",
            port=args.first_port + n,
            env=base | {"MNIST_API_PORT": str(args.first_port + n)},
            log_path=folder / f"instance-{n + 1}.log",
        )
        for n in range(args.instances)
    ]
    config = folder / "haproxy.cfg"
    stats_socket = folder / "haproxy.sock"
    servers = [(i.name, f"127.0.0.1:{i.port}") for i in instances]
    config.write_text(
        haproxy_config(f"127.0.0.1:{args.port}", servers, stats_socket=stats_socket),
        encoding="utf-8",
    )
    balancer = Balancer(config, stats_socket, folder / "haproxy.log")
    return Fleet(args.port, instances, balancer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/fleet", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per instance")
    parser.add_argument("--port", type=int, default=8000, help="the balancer's port")
    parser.add_argument("--first-port", type=int, default=8101, help="the first instance's port")
    parser.add_argument("--dir", default="var/fleet", help="configuration and logs")
    parser.add_argument(
        "--compose-config",
        action="store_true",
        help="print deploy/haproxy/haproxy.cfg (compose's fleet profile) and exit",
    )
    args = parser.parse_args(argv)
    if args.compose_config:
        print(compose_config(), end="")
        return 0
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    build(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
