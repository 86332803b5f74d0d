"""The SDK's one way to the API (standard library only): base URL and key from the arguments
or RDS_BASE_URL / RDS_API_KEY, a timeout per request, retries only for requests that are safe to
repeat (GET, PUT, DELETE), and every error answer as an RdsApiError."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterator, Optional

from .errors import RdsApiError, RdsConnectionError

_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE"}
_RETRY_STATUS = {502, 503, 504}


class Http:
    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, timeout: float = 120.0, retries: int = 3) -> None:
        self.base_url = (base_url or os.environ.get("RDS_BASE_URL") or "http://127.0.0.1:3000").rstrip("/")
        key = api_key or os.environ.get("RDS_API_KEY")
        if not key:
            raise ValueError("No API key: pass api_key= or set RDS_API_KEY")
        self._api_key = key
        self.timeout = timeout
        self.retries = max(1, retries)

    def json(self, method: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        raw = self.send(method, path, data, "application/json" if data is not None else None, timeout)
        return json.loads(raw) if raw else None

    def send(self, method: str, path: str, data: Optional[bytes] = None, content_type: Optional[str] = None, timeout: Optional[float] = None) -> bytes:
        attempts = self.retries if method in _IDEMPOTENT else 1
        last: Exception = RdsConnectionError(f"no attempt made to {self.base_url}")
        for attempt in range(1, attempts + 1):
            headers = {"x-api-key": self._api_key}
            if content_type:
                headers["content-type"] = content_type
            req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout or self.timeout) as res:
                    return res.read()
            except urllib.error.HTTPError as e:
                if e.code in _RETRY_STATUS and attempt < attempts:
                    time.sleep(0.2 * 2 ** (attempt - 1))
                    continue
                raise _error_of(e) from None
            except (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError) as e:
                reason = getattr(e, "reason", e)
                last = RdsConnectionError(f"cannot reach {self.base_url}: {reason}")
                if attempt < attempts:
                    time.sleep(0.2 * 2 ** (attempt - 1))
        raise last


    def lines(self, method: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """An NDJSON answer, one parsed line at a time as it arrives (never retried: it may have
        started something). Closing the generator closes the connection."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"x-api-key": self._api_key}
        if data is not None:
            headers["content-type"] = "application/json"
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            res = urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raise _error_of(e) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError) as e:
            raise RdsConnectionError(f"cannot reach {self.base_url}: {getattr(e, 'reason', e)}") from None
        with res:
            for line in res:
                if line.strip():
                    yield json.loads(line)


def _error_of(e: urllib.error.HTTPError) -> RdsApiError:
    text = e.read().decode("utf-8", "replace")
    try:
        body: Dict[str, Any] = json.loads(text)
        code = body.pop("code", "http_error")
        message = body.pop("message", f"{e.code} {e.reason}")
        return RdsApiError(e.code, code, message, body)
    except (ValueError, AttributeError):
        return RdsApiError(e.code, "http_error", text[:500] or f"{e.code} {e.reason}")


def query(**params: Any) -> str:
    clean = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None}
    return f"?{urllib.parse.urlencode(clean)}" if clean else ""
