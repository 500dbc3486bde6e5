"""A free loopback TCP port, for the tests' servers and torch.distributed rendezvous (and, bound then closed, a
port with nothing listening)."""
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
