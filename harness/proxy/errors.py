"""API errors with upstream Toxiproxy's messages and statuses (api.go:507-519).

Clients match on the status and sometimes on the message, so both are kept
verbatim; details are appended as upstream does: "<message>: <detail>".
"""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        self.status = status
        self.message = f"{message}: {detail}" if detail else message
        super().__init__(self.message)

    def with_detail(self, detail: str) -> "ApiError":
        return ApiError(self.status, self.message, detail)


BAD_REQUEST_BODY = ApiError(400, "bad request body")
MISSING_FIELD = ApiError(400, "missing required field")
PROXY_NOT_FOUND = ApiError(404, "proxy not found")
PROXY_EXISTS = ApiError(409, "proxy already exists")
INVALID_STREAM = ApiError(400, "stream was invalid, can be either upstream or downstream")
INVALID_TOXIC_TYPE = ApiError(400, "invalid toxic type")
TOXIC_EXISTS = ApiError(409, "toxic already exists")
TOXIC_NOT_FOUND = ApiError(404, "toxic not found")
# not upstream's: a proxy whose upstream is one of this server's own listeners dials itself
# until the descriptors run out
UPSTREAM_LOOP = ApiError(400, "upstream is one of this proxy server's own listeners")


def internal(text: str) -> ApiError:
    """Any other failure (bind, resolve): upstream answers 500 with the raw error text."""
    return ApiError(500, text)
