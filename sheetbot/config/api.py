"""The YAML's `api:` (issue 15, item 4): `serve`'s intake API, off unless this key is there.

```yaml
api:
  token_env: SHEETBOT_API_TOKEN          # the bearer token callers send; `check` fails while it is unset
  callback_secret_env: SHEETBOT_CALLBACK_SECRET   # signs the POST a task's callback_url receives
```

Only the names of environment variables sit here, never their values (config/checks.py refuses a value).
The bounds keep a caller from filling the board or the process: a request body is at most
``max_body_bytes`` (413 beyond), an input at most ``max_input_chars``.
"""

from __future__ import annotations

from pydantic import Field

from sheetbot.config.fields import Strict


class ApiConfig(Strict):
    """`POST /tasks` and `GET /tasks/{id}` on serve's HTTP port (sheetbot/service/http_app.py)."""

    token_env: str
    #: Signs each task's callback (Standard Webhooks); without it a POST that names a callback_url is refused.
    callback_secret_env: str | None = None
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    max_input_chars: int = Field(default=20_000, ge=1, le=200_000)
    #: Seconds a callback receiver has to answer, and tries per harvest before it waits for the next one.
    callback_timeout_s: float = Field(default=10.0, gt=0, le=60)
    callback_tries: int = Field(default=3, ge=1, le=10)
    #: Callbacks to loopback or private addresses (a receiver on the same network); off: a caller must not make
    #: sheetbot reach this machine's or its network's services.
    allow_private_callbacks: bool = False
