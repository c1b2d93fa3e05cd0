"""The API's errors: one JSON shape, ``{"error": code, "message": text}``."""

from __future__ import annotations

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

# Codes for the HTTP errors Werkzeug raises itself (routing, body size...).
HTTP_CODES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
              405: "method-not-allowed", 409: "conflict", 413: "too-large",
              415: "unsupported-media-type", 422: "invalid", 429: "too-many-requests"}


class ApiError(Exception):
    """The caller's fault, with the status and code to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad(message: str) -> ApiError:
    return ApiError(400, "bad-request", message)


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid", message)


def not_found(what: str) -> ApiError:
    # The same words whether it does not exist or is not the caller's to see.
    return ApiError(404, "not-found", f"no {what} (or not yours to see)")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def _json(status: int, code: str, message: str) -> tuple[Response, int]:
    response = jsonify(error=code, message=message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="passerelle"'
    return response, status


def answer(error: ApiError) -> tuple[Response, int]:
    return _json(error.status, error.code, error.message)


def from_http(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    return _json(status, HTTP_CODES.get(status, "error"), exc.description or exc.name)
