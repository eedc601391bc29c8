"""Domain errors carry a stable machine-readable code; the HTTP layer maps them to 4xx JSON."""

from __future__ import annotations


class DomainError(Exception):
    code: str = "error"
    http_status: int = 400

    def __init__(self, code: str | None = None, message: str = "", http_status: int | None = None):
        self.code = code or self.code
        self.message = message or self.code.replace("_", " ")
        if http_status is not None:
            self.http_status = http_status
        super().__init__(self.message)
