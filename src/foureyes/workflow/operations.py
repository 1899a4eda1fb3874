"""The lifecycle's operations in one place (assembly is `foureyes.bootstrap`).

Routes, console views, the CLI and the `Guard` library API call these and nothing deeper.
"""

from __future__ import annotations

from foureyes.auth.bearer import authenticate_bearer, authenticate_oidc
from foureyes.auth.keys import list_credentials as security_keys
from foureyes.auth.keys import revoke as revoke_key
from foureyes.auth.keys import revoke_own as revoke_security_key
from foureyes.auth.logins import unbind as unbind_login
from foureyes.auth.registrations import start as start_security_key_enrolment
from foureyes.auth.tokens import (
    authenticate,
    authenticate_identity,
    issue_token,
    list_tokens,
    revoke_token,
)
from foureyes.auth.webauthn import registration_options as security_key_options
from foureyes.core.logstate import check as check_log
from foureyes.core.services import Actor, Services
from foureyes.workflow.answered import (
    cancel,
    execute,
    post_review,
    review,
    review_and_run,
    review_and_show,
    run_if_allowed,
    seal_records,
    show,
    show_after,
    show_submitted,
    show_to,
    step_up_options,
    submit_and_run,
    submit_run_or_replay,
    undo_run_or_replay,
)
from foureyes.workflow.audit_reads import EventFilter, audit_event, audit_events
from foureyes.workflow.demo import demo_step_up
from foureyes.workflow.enrolment import (
    Enrolled,
    console_proof_options,
    enrol_console_key,
    enrol_security_key,
    security_key_proof_options,
)
from foureyes.workflow.execute import ExecutionOutcome
from foureyes.workflow.first_start import seed
from foureyes.workflow.reconcile import reconcile
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.staff import import_directory, list_staff
from foureyes.workflow.submit import (
    Denied,
    Submission,
    Submitted,
    dry_run,
    submit,
)
from foureyes.workflow.undo import undo, undo_asks_for, undo_or_replay
from foureyes.workflow.undo_offer import undo_offered
from foureyes.workflow.views import ListFilter, list_requests, page_position

__all__ = [
    "Actor",
    "Denied",
    "Enrolled",
    "EventFilter",
    "ExecutionOutcome",
    "ListFilter",
    "ReviewInput",
    "Services",
    "Submission",
    "Submitted",
    "audit_event",
    "audit_events",
    "authenticate",
    "authenticate_bearer",
    "authenticate_identity",
    "authenticate_oidc",
    "cancel",
    "check_log",
    "console_proof_options",
    "demo_step_up",
    "dry_run",
    "enrol_console_key",
    "enrol_security_key",
    "execute",
    "import_directory",
    "issue_token",
    "list_requests",
    "list_staff",
    "list_tokens",
    "page_position",
    "post_review",
    "reconcile",
    "review",
    "review_and_run",
    "review_and_show",
    "revoke_key",
    "revoke_security_key",
    "revoke_token",
    "run_if_allowed",
    "seal_records",
    "security_key_options",
    "security_key_proof_options",
    "security_keys",
    "seed",
    "show",
    "show_after",
    "show_submitted",
    "show_to",
    "start_security_key_enrolment",
    "step_up_options",
    "submit",
    "submit_and_run",
    "submit_run_or_replay",
    "unbind_login",
    "undo",
    "undo_asks_for",
    "undo_offered",
    "undo_or_replay",
    "undo_run_or_replay",
]
