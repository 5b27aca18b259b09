"""Which network interface reaches the other hosts of a job, from the standard library
alone (imported by ``import bwkeras``: no TensorFlow, no Horovod, no subprocess).

A cluster node has loopback and one or more real interfaces; Gloo and Open MPI must use
one that reaches the other nodes. The route to the launcher's host answers that: a UDP
socket "connected" to it (no packet is sent) gets the local address the kernel would send
from, and the interface holding that address is the one to use.
"""
import fcntl
import ipaddress
import socket
import struct

_SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def interfaces():
    """Names of this host's network interfaces."""
    return [name for _, name in socket.if_nameindex()]


def interface_address(name):
    """The IPv4 address of interface `name`, or None (no IPv4 address, or not Linux)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def source_address(host):
    """The local IPv4 address the kernel routes traffic to `host` from, or None."""
    try:
        addr = socket.gethostbyname(host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((addr, 9))  # UDP: sets the route, sends nothing
            return s.getsockname()[0]
    except OSError:
        return None


def interface_to(host):
    """Name of the interface that traffic to `host` leaves from, or None when unknown.
    Loopback when `host` is this machine itself and only reachable that way."""
    src = source_address(host)
    if src is None:
        return None
    for name in interfaces():
        if interface_address(name) == src:
            return name
    return None


def is_loopback(name):
    addr = interface_address(name)
    return addr is not None and ipaddress.ip_address(addr).is_loopback


def unknown_interfaces(value):
    """The names in a comma-separated interface list (HOROVOD_GLOO_IFACE, Open MPI's
    btl_tcp_if_include) that this host does not have. Subnets (a.b.c.d/n) are Open MPI's
    other spelling and are not checked."""
    have = set(interfaces())
    return [n for n in (v.strip() for v in value.split(",")) if n and "/" not in n and n not in have]
