"""Where sheetbot may send a request: the URL rule of sheetbot/safety/outbound.py, without any HTTP client.

Apart from ``outbound`` so that what only judges an address (the YAML's validators, `sheetbot check`)
needs no HTTP library: the configuration sits below the night, and the night imports no vendor package.
Addresses are judged as written; a name is not resolved (no DNS at `check`), but the legacy IPv4
spellings (``2852039166``, ``0xa9.254.169.254``) that the resolver would expand are.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

#: Hosts that answer with the machine's cloud credentials (GCP, AWS, Azure, Alibaba, OpenStack).
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
#: Metadata services outside the link-local ranges (Alibaba Cloud, AWS over IPv6).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")})

_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP a literal host stands for, legacy IPv4 spellings included; None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _LEGACY_IPV4.match(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    address = _address(host)
    return host == "localhost" if address is None else address.is_loopback


def url_problem(url: str) -> str | None:
    """Why sheetbot will not POST to ``url``, or None. Names the host only: a URL may carry a token."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return "is not a valid URL: write https://<host>/<path>"
    if parts.scheme not in ("http", "https") or not host:
        return "is not an http(s) URL: write https://<host>/<path>"
    address = _address(host)
    if host in METADATA_HOSTS or (address is not None and (address.is_link_local or address in METADATA_ADDRESSES)):
        return (
            f"points at {host}, a link-local or cloud-metadata address: sheetbot sends nothing there; "
            "use the receiver's own address"
        )
    if parts.scheme == "http" and not is_loopback(host):
        return (
            f"uses plain http:// to {host}: write https:// "
            "(http is allowed only to loopback: 127.0.0.1, ::1, localhost)"
        )
    return None


def private_problem(url: str) -> str | None:
    """Why a URL a caller of the intake API gave is refused unless the YAML allows private receivers: it names
    this machine or a private network (loopback, RFC 1918, unique-local, reserved), which a caller must not
    make sheetbot reach. Judged as written, like ``url_problem``: a name is not resolved."""
    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return "is not a valid URL: write https://<host>/<path>"
    address = _address(host)
    if host == "localhost" or (
        address is not None
        and (address.is_private or address.is_loopback or address.is_reserved or address.is_unspecified)
    ):
        return (
            f"points at {host}, a private or loopback address: sheetbot sends callbacks there only with "
            "api.allow_private_callbacks: true"
        )
    return None
