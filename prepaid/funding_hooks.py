"""Where auto-recharge money comes from: a command or an HTTP call, set in the config.

Both get the request as JSON (account, tenant, amount in minor units, currency, reference)
and must be idempotent on `reference`: a recharge retried after a timeout reuses it.
- Command: JSON on stdin (and CALLGATE_RECHARGE_* environment variables); exit 0 is
  success, the first stdout line is the funder's reference, stderr explains a failure.
- HTTP: POST JSON; a 2xx answer is success, its JSON `reference` is kept.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import aiohttp


@dataclass(frozen=True)
class FundingRequest:
    account: str
    tenant: str
    amount: int
    currency: str
    reference: str


@dataclass(frozen=True)
class FundingResult:
    ok: bool
    reference: str = ""
    message: str = ""


class FundingHook(Protocol):
    async def fund(self, request: FundingRequest) -> FundingResult: ...


class CommandFundingHook:
    def __init__(self, argv: Sequence[str], timeout_s: float = 30.0) -> None:
        if not argv:
            raise ValueError("the funding command is empty")
        self._argv = list(argv)
        self._timeout = timeout_s

    async def fund(self, request: FundingRequest) -> FundingResult:
        env = {
            **os.environ,
            "CALLGATE_RECHARGE_ACCOUNT": request.account,
            "CALLGATE_RECHARGE_TENANT": request.tenant,
            "CALLGATE_RECHARGE_AMOUNT": str(request.amount),
            "CALLGATE_RECHARGE_CURRENCY": request.currency,
            "CALLGATE_RECHARGE_REFERENCE": request.reference,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env,
            )
        except OSError as exc:
            return FundingResult(False, message=f"cannot run {self._argv[0]}: {exc}")
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(json.dumps(asdict(request)).encode()), self._timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return FundingResult(False, message=f"funding command timed out after {self._timeout}s")
        if proc.returncode != 0:
            msg = err.decode(errors="replace").strip()[:300] or f"exit status {proc.returncode}"
            return FundingResult(False, message=msg)
        lines = out.decode(errors="replace").strip().splitlines()
        return FundingResult(True, reference=lines[0][:200] if lines else "")


class HttpFundingHook:
    def __init__(self, url: str, timeout_s: float = 30.0, headers: dict[str, str] | None = None):
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._headers = headers or {}

    async def fund(self, request: FundingRequest) -> FundingResult:
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as http, http.post(
                self._url, json=asdict(request), headers=self._headers
            ) as resp:
                body = await resp.text()
                if not 200 <= resp.status < 300:
                    return FundingResult(False, message=f"HTTP {resp.status}: {body[:300]}")
                try:
                    ref = str(json.loads(body).get("reference", ""))[:200] if body else ""
                except (ValueError, AttributeError):
                    ref = ""
                return FundingResult(True, reference=ref)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return FundingResult(False, message=f"funding call failed: {exc!r}")
