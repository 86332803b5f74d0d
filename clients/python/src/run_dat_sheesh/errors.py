"""Errors: an answer of the API that is not a success, or no answer at all."""

from __future__ import annotations

from typing import Any, Dict, Optional


class RdsError(Exception):
    """Base of the SDK's errors."""


class RdsApiError(RdsError):
    """The API answered with an error: its stable ``code``, HTTP ``status`` and sentence."""

    def __init__(self, status: int, code: str, message: str, details: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: Dict[str, Any] = details or {}
        #: The manager's id of the request (its X-Request-Id): the manager log lines of the call carry it as ``reqId``.
        self.request_id: Optional[str] = self.details.get("requestId") if isinstance(self.details.get("requestId"), str) else None

    def __repr__(self) -> str:
        return f"RdsApiError(status={self.status}, code={self.code!r}, message={self.message!r})"


class RdsConnectionError(RdsError):
    """The manager could not be reached, or did not answer in time."""
