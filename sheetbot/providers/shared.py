"""Provider accounts shared by the boards of one `serve` process (issue 15: many boards in one process).

Vendors enforce rpm, tpm and a bad key per account, not per board: two boards whose provider entries have the
same kind, base URL and API key are one account, so they draw from one set of rpm/tpm buckets and one circuit
breaker, and together stay under the account's limits. Entries are told apart by a SHA-256 of the key's value
(read from the environment the YAML names); neither the key nor its hash is logged or stored anywhere else.

When two entries of one account state different limits, the stricter holds for both (the lower rpm, the lower
tpm; a limit one entry states and the other leaves out holds too). Limits only tighten while the process runs:
an edited YAML that raises them takes effect at the next start. Concurrency stays per board (it bounds this
board's calls in flight, which is this process's resource, not the account's).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sheetbot.config.models import ProviderConfig
from sheetbot.errors import PermanentProviderError
from sheetbot.providers.ratelimit import AccountLimits
from sheetbot.providers.resilient import Breaker


@dataclass(frozen=True)
class AccountKey:
    """What makes two provider entries one account; ``key_sha256`` is a hash, never the key."""

    kind: str
    base_url: str
    key_sha256: str


@dataclass
class Account:
    """One account's shared limits and breaker, and which board's entries use it (for the log and tests)."""

    limits: AccountLimits
    breaker: Breaker = field(default_factory=Breaker)
    rpm: int | None = None
    tpm: int | None = None
    users: set[str] = field(default_factory=set)


def _stricter(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


class Accounts:
    """Every account the boards of this process use, made once and handed to each board's providers."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._guard = threading.Lock()
        self._monotonic = monotonic
        self._accounts: dict[AccountKey, Account] = {}

    @staticmethod
    def key(name: str, config: ProviderConfig, env: Mapping[str, str]) -> AccountKey | None:
        """The account of ``providers.<name>``; None when it has no key (its own error comes when it is made)."""
        from sheetbot.providers.factory import api_key_for

        try:
            _, api_key = api_key_for(name, config, env=env)
        except PermanentProviderError:
            return None
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        return AccountKey(config.kind or name, (config.base_url or "").rstrip("/"), digest)

    def account(self, user: str, name: str, config: ProviderConfig, env: Mapping[str, str]) -> Account | None:
        """The shared account for ``user``'s (a board's) entry ``providers.<name>``, tightened to its limits."""
        key = self.key(name, config, env)
        if key is None:
            return None
        with self._guard:
            account = self._accounts.get(key)
            if account is None:
                limits = AccountLimits(rpm=config.rpm, tpm=config.tpm, monotonic=self._monotonic)
                account = self._accounts[key] = Account(limits=limits, rpm=config.rpm, tpm=config.tpm)
            else:
                self._tighten(account, config)
            account.users.add(f"{user}:{name}")
            return account

    def _tighten(self, account: Account, config: ProviderConfig) -> None:
        rpm, tpm = _stricter(account.rpm, config.rpm), _stricter(account.tpm, config.tpm)
        account.limits.retune(rpm=rpm if rpm != account.rpm else None, tpm=tpm if tpm != account.tpm else None)
        account.rpm, account.tpm = rpm, tpm

    def shared(self) -> list[Account]:
        """The accounts more than one entry uses."""
        with self._guard:
            return [a for a in self._accounts.values() if len(a.users) > 1]
