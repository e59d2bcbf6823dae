"""The exceptions thulium-etl raises; each knows the exit code the CLI turns it into.

Nothing below the CLI exits the process: code raises one of these, and the CLI maps
``exit_code`` (an :class:`~etl.exits.ExitCode`, where the codes are declared) to the process
status. Per-campaign errors are caught by the fetch pipeline and recorded; the others stop
the whole command (a test keeps the codes below equal to the classes')::

    EtlError                      exit 1 unless a subclass says otherwise
    ├── ConfigError               2: a setting is missing or malformed; nothing contacted
    ├── NoSuchRoleError           2: grant-read names a role that does not exist
    ├── DatabaseError             3: unreachable, refuses writes, timed out past retries
    │   ├── RunTakenOver             3: the lock's connection was lost; another sync took over
    │   ├── SchemaNotCurrentError    3: run `thulium-etl migrate` first
    │   └── SchemaTooNewError        3: a newer thulium-etl migrated the database
    ├── DiscoveryError            69: the active campaigns could not be listed
    │   └── DiscoveryRefused         1: … because the API rejected the credentials (401)
    ├── OutputError               74: stdout could not be written
    ├── LockHeldError             75: another sync holds the lock
    ├── InterruptedRun            143: SIGTERM/SIGINT
    └── CampaignError             one campaign failed; recorded, the run goes on
        ├── ApiError                 Thulium answered with an error, or not at all
        │   └── AuthError            HTTP 401: the run stops starting campaigns
        └── PayloadError             a 200 that is not the list of statuses

    DeadlineExceeded, BodyTooLarge   raised by the HTTP transport; the client turns each
                                     into an ApiError of the campaign it was fetching
"""

from __future__ import annotations

from etl.exits import ExitCode


class EtlError(Exception):
    """Base of every error thulium-etl raises on purpose."""

    exit_code: ExitCode = ExitCode.CAMPAIGN_FAILED


class ConfigError(EtlError):
    """A setting is missing or malformed; raised before anything is contacted."""

    exit_code = ExitCode.CONFIG


class NoSuchRoleError(EtlError):
    """``grant-read ROLE`` names a role the database does not have: a usage error, found by
    asking the database; nothing was changed."""

    exit_code = ExitCode.CONFIG


class DatabaseError(EtlError):
    """The database cannot be reached or refused an operation the job needs."""

    exit_code = ExitCode.DATABASE


class RunTakenOver(DatabaseError):
    """The connection holding the run lock was lost, and another sync took over: this run
    stops, keeping what it committed."""


class SchemaNotCurrentError(DatabaseError):
    """The schema is not at the migration head: run ``thulium-etl migrate`` first."""


class SchemaTooNewError(DatabaseError):
    """A newer thulium-etl migrated the database: this version must not touch it."""


class OutputError(EtlError):
    """Standard output could not be written (a full disk, a closed pipe)."""

    exit_code = ExitCode.OUTPUT

    def __init__(self, message: str, *, quiet: bool = False) -> None:
        super().__init__(message)
        self.quiet = quiet  # a reader that went away (``runs | head``) is no error to report


class LockHeldError(EtlError):
    """Another sync of the same campaigns holds the run lock."""

    exit_code = ExitCode.LOCKED


class DiscoveryError(EtlError):
    """``THULIUM_CAMPAIGNS=active``, and ``GET /outbounds/stats`` failed or made no sense:
    the run syncs nothing rather than a guess."""

    exit_code = ExitCode.DISCOVERY


class DiscoveryRefused(DiscoveryError):
    """``GET /outbounds/stats`` answered 401: wrong credentials, which no retry mends (the
    same exit code as a 401 on a campaign's statuses)."""

    exit_code = ExitCode.CAMPAIGN_FAILED


def with_request_id(message: str, request_id: str | None) -> str:
    """The message with Thulium's ``request_id``, which its support asks for."""
    return f"{message} (Thulium request_id {request_id})" if request_id else message


class CampaignError(EtlError):
    """Fetching or validating one campaign failed; the run goes on with the others."""

    def __init__(
        self,
        message: str,
        *,
        campaign_id: str,
        request_id: str | None = None,
        attempts: int = 0,
        subject: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.campaign_id = campaign_id
        self.request_id = request_id
        self.attempts = attempts
        self.subject = subject or f"campaign {campaign_id}"  # what the message is about

    @property
    def detail(self) -> str:
        return with_request_id(self.message, self.request_id)

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


class ApiError(CampaignError):
    """Thulium answered with an error status, or the request never got an answer."""

    def __init__(
        self,
        message: str,
        *,
        campaign_id: str,
        status: int | None = None,
        request_id: str | None = None,
        attempts: int = 0,
        subject: str | None = None,
    ) -> None:
        super().__init__(
            message,
            campaign_id=campaign_id,
            request_id=request_id,
            attempts=attempts,
            subject=subject,
        )
        self.status = status


class AuthError(ApiError):
    """HTTP 401: the credentials are wrong or expired, the same for every campaign."""


class PayloadError(CampaignError):
    """Thulium answered 2xx, but the body is not the array of statuses we expect."""


class InterruptedRun(EtlError):
    """SIGTERM or SIGINT arrived: the run stopped starting new work."""

    exit_code = ExitCode.TERMINATED


# -- raised by the HTTP transport and turned into a CampaignError by the client ------------


class DeadlineExceeded(Exception):
    """A request outlived its total deadline (``THULIUM_REQUEST_DEADLINE``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"no complete answer within {seconds:g}s (THULIUM_REQUEST_DEADLINE), although "
            "the server kept sending"
        )


class BodyTooLarge(Exception):
    """A 200 answer's decoded body is larger than ``THULIUM_MAX_BODY_BYTES``."""

    def __init__(self, what: str, *, limit: int) -> None:
        super().__init__(
            f"{what}: more than THULIUM_MAX_BODY_BYTES={limit} bytes once decoded; "
            "a real list of statuses is a few kilobytes"
        )
