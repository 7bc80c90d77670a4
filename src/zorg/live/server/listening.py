"""Listening sockets: bound by a server itself, or inherited.

A process started by ``zorg-live serve`` binds its servers' addresses
itself. With ``workers N`` a supervising parent (workers.py) binds every
address once, before it starts its workers, and hands the sockets down
with `inherit`: a server of a worker then takes its socket from here, so
all workers accept connections on the same socket (the kernel gives each
connection to one of them) and a restarted worker needs no new bind.
"""

import socket

_inherited = {}   # (host, port) -> listening socket


def bind(host, port):
    """A listening socket for (host, port): the inherited one, else a new
    one (port 0: any free port)."""
    sock = _inherited.pop((host, port), None)
    if sock is not None:
        return sock
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def inherit(sockets):
    """Make {(host, port): socket} the sockets that `bind` hands out (in
    a worker, before its servers are made)."""
    _inherited.clear()
    _inherited.update(sockets)


def inherited(host, port):
    """Whether (host, port) has an inherited socket waiting."""
    return (host, port) in _inherited
