"""Error types: user errors (fixable by the user) versus internal errors, and HTTP errors for serving."""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix (configuration or data); reported without a traceback."""

    category = "ClientError"

    def __str__(self) -> str:  # keep the category first, as SageMaker users read it in FailureReason
        return f"{self.category}: {super().__str__()}"


class ConfigError(UserError):
    """A hyperparameter, channel or resource configuration the algorithm cannot use."""

    category = "ConfigError"


class DataError(UserError):
    """Training or validation data that cannot be read or is inconsistent."""

    category = "DataError"


class HTTPError(Exception):
    """A serving error with an HTTP status and a message for the JSON body."""

    def __init__(self, status: int, message: str, **details: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def to_json(self) -> dict:
        """The JSON body returned to the client."""
        body = {"error": self.message, "status": self.status}
        body.update(self.details)
        return body
