"""Console sign-in through the company's OpenID Connect provider (placeholder, filled in below)."""

from fastapi import APIRouter

router = APIRouter()
