"""Every webhook sheetbot POSTs (on_approve, the notification webhook, Slack) goes through here.

One rule, in one place, because an outbound call carries approved text, a signature or a secret URL:

* **No redirect is followed.** A 302 would turn the POST into a body-less GET whose 200 looked like a
  delivery; a 307 would re-POST the signed body to whatever host ``Location`` names. A 3xx is a failed
  delivery that says where it pointed, so the admin puts the final address in the YAML.
* **https only**, except to loopback (127.0.0.0/8, ::1, ``localhost``), where a local relay may listen.
* **No link-local or cloud-metadata address** (169.254.0.0/16, fe80::/10, metadata.google.internal, …):
  a URL there reaches the host's credentials service, never a receiver the admin meant.

The model providers' base_url obeys the same rule, and their SDK clients follow no redirect either
(`sdk_http_client`). `url_problem` (sheetbot/safety/urls.py, apart so that judging an address needs no HTTP
library) is what the YAML's validators and `sheetbot check` ask; `post` asks it again before every send (a
Slack URL comes from the environment, not the YAML).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from sheetbot.errors import OutboundError
from sheetbot.safety.urls import url_problem

_Client = TypeVar("_Client")


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
