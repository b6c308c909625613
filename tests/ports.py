"""Free TCP ports on 127.0.0.1 for servers that tests start in other processes.

Every socket stays bound until all ports of one call are picked, so one call never returns
the same port twice. Picking ports one at a time let the kernel hand back a port just released,
and two listeners of one config collided ("port … is already used")."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]
