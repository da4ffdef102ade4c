"""Which model errors end a call, and which the code sees as observations.

An error no retry or rewrite can fix (a missing or rejected key, no access, an unknown model or
provider, an unsupported setting) ends the call with `LMFailure`: shown to the root model, a
misconfigured sub-model would only give nine failed sub-queries and a wrong answer. Transient
errors (rate limits, timeouts, 5xx, dropped connections) and per-prompt ones (a prompt over the
context window, a refused request) stay observations the code can react to.

DSPy 3.4 maps provider errors to its own types (`dspy.utils.exceptions`): `LMAuthError` for
401/403 (litellm's AuthenticationError and PermissionDeniedError), `LMUnsupportedModelError`
for 404 (NotFoundError), `LMNotConfiguredError` for a missing key, `LMInvalidRequestError` for
litellm's BadRequestError, which is also how an unknown provider is reported. Errors raised by
other clients are recognised by their class names and HTTP status.
"""

from __future__ import annotations

from dspy.utils.exceptions import (
    LMAuthError, LMBillingError, LMConfigurationError, LMUnsupportedFeatureError, LMUnsupportedModelError,
)

_FATAL_TYPES = (LMAuthError, LMBillingError, LMConfigurationError, LMUnsupportedFeatureError, LMUnsupportedModelError)
# Raw client errors (litellm, openai, anthropic SDKs) that are not wrapped by DSPy.
_FATAL_NAMES = {"AuthenticationError", "PermissionDeniedError", "NotFoundError", "LMNotConfiguredError"}
_FATAL_STATUS = {401, 403, 404}
_UNKNOWN_PROVIDER = "LLM Provider NOT provided"


def is_configuration_error(error: BaseException) -> bool:
    """Whether a model error means the model is unusable as configured (not a transient failure)."""
    if isinstance(error, _FATAL_TYPES):
        return True
    if any(cls.__name__ in _FATAL_NAMES for cls in type(error).__mro__):
        return True
    status = getattr(error, "status", None) or getattr(error, "status_code", None)
    return status in _FATAL_STATUS or _UNKNOWN_PROVIDER in str(error)
