"""The gateway's exception tree; every error knows the SMTP reply it stands for.

    GatewayError
    ├── ConfigError            bad configuration (exit 2; the message names the key)
    ├── PackError              a rule pack that does not validate (exit 2)
    ├── LookupTempError        a fact could not be gathered now (451, never a pass)
    │   ├── StoreUnavailable   the consent/event store did not answer      -> 451 4.3.0
    │   └── DnsTempError       DNS did not answer and nothing usable is cached -> 451 4.4.3
    ├── SigningKeyError        a DKIM key cannot be read or used            -> 451 4.3.0
    └── UpstreamError          the outbound MTA
        ├── UpstreamUnavailable  could not connect / connection lost        -> 451 4.4.1
        └── UpstreamTimeout      did not answer in time                     -> 451 4.4.2

Verdicts are values (see model.py); exceptions are only for things that went wrong.
"""

from __future__ import annotations

from gateway.replies import Reply, replies


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    reply: Reply = replies.temp_failure


class ConfigError(GatewayError):
    """The configuration is unusable; `key` is its dotted path when one is to blame."""

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class PackError(GatewayError):
    """A rule pack failed validation at load time."""


class LookupTempError(GatewayError):
    """A fact could not be gathered now; the caller must answer 4xx, never pass."""


class StoreUnavailable(LookupTempError):
    """The store did not answer."""

    reply = replies.store_unavailable


class DnsTempError(LookupTempError):
    """DNS did not answer and no usable cached answer exists."""

    reply = replies.dns_temp_failure


class SigningKeyError(GatewayError):
    """A DKIM key could not be read or used: the gateway never sends unsigned mail."""

    reply = replies.signing_key_unusable


class UpstreamError(GatewayError):
    """The outbound MTA could not take part in the transaction."""

    reply = replies.upstream_unavailable
    kind = "unavailable"  # the label of tokuden_upstream_errors_total


class UpstreamUnavailable(UpstreamError):
    """Could not connect, or the connection was lost."""

    reply = replies.upstream_unavailable


class UpstreamBusy(UpstreamError):
    """Every upstream connection this process may open is in use, and none came back."""

    reply = replies.upstream_busy
    kind = "busy"


class UpstreamTimeout(UpstreamError):
    """The outbound MTA did not answer within its timeout."""

    reply = replies.upstream_timeout
    kind = "timeout"
