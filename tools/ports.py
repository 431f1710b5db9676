"""Free local TCP ports for the processes the demo, the benches and the tests start.

``free_ports(n)`` holds every socket until all are chosen, so the n ports differ from each other;
``free_port()`` is one of them. A port is free when chosen: whoever binds it next must be quick.
"""

import contextlib
import socket


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket())
            s.bind((host, 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]
