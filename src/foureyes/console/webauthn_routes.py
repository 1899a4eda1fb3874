"""Console routes for security keys (WebAuthn enrolment, revocation, assertion options)."""

from fastapi import APIRouter

router = APIRouter()
