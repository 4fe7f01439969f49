"""Every webhook sheetbot POSTs (on_approve, the notification webhook, Slack) goes through here.

One rule, in one place, because an outbound call carries approved text, a signature or a secret URL:

* **No redirect is followed.** A 302 would turn the POST into a body-less GET whose 200 looked like a
  delivery; a 307 would re-POST the signed body to whatever host ``Location`` names. A 3xx is a failed
  delivery that says where it pointed, so the admin puts the final address in the YAML.
* **https only**, except to loopback (127.0.0.0/8, ::1, ``localhost``), where a local relay may listen.
* **No link-local or cloud-metadata address** (169.254.0.0/16, fe80::/10, metadata.google.internal, …):
  a URL there reaches the host's credentials service, never a receiver the admin meant.

The model providers' base_url obeys the same rule, and their SDK clients follow no redirect either
(`sdk_http_client`). `url_problem` is what the YAML's validators and `sheetbot check` ask; `post` asks it
again before every send (a Slack URL comes from the environment, not the YAML). Addresses are judged as
written; a name is not resolved (no DNS at `check`), but the legacy IPv4 spellings (``2852039166``,
``0xa9.254.169.254``) that the resolver would expand are.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from sheetbot.errors import OutboundError

#: Hosts that answer with the machine's cloud credentials (GCP, AWS, Azure, Alibaba, OpenStack).
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
#: Metadata services outside the link-local ranges (Alibaba Cloud, AWS over IPv6).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")})

_Client = TypeVar("_Client")

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


def post(session: requests.Session, url: str, *, timeout_s: float, **kwargs: Any) -> requests.Response:
    """POST without following a redirect. Raises `OutboundError` for a URL `url_problem` refuses and for any
    3xx answer; every other answer (2xx, 4xx, 5xx) is returned for the caller to judge."""
    problem = url_problem(url)
    if problem is not None:
        raise OutboundError(f"the webhook URL {problem}")
    response = session.post(url, timeout=timeout_s, allow_redirects=False, **kwargs)
    if 300 <= response.status_code < 400:
        source = urlsplit(url).hostname
        try:
            target = urlsplit(response.headers.get("Location", "")).hostname or source
        except ValueError:
            target = "an unreadable Location"
        raise OutboundError(
            f"{source} answered {response.status_code} redirect to {target} — sheetbot follows no redirect: "
            "point the URL at the final address"
        )
    return response


def sdk_http_client(default: Callable[..., _Client], given: _Client | None) -> _Client:
    """The HTTP client for an anthropic/openai SDK: ``given`` (tests' transports), else the SDK's own default
    client told to follow no redirect. The SDKs follow redirects by default, and httpx keeps a custom header
    such as Anthropic's ``x-api-key`` when it follows one to another host: the key would go along."""
    return given if given is not None else default(follow_redirects=False)
