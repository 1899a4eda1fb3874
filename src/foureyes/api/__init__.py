"""The HTTP API (`/v1`, JSON, RFC 9457 problems, bearer tokens) over the lifecycle operations.

`create_app(services, settings)` makes the FastAPI app; `foureyes.api.server.run` serves it with
the background worker (that is what `foureyes serve` does).
"""

from foureyes.api.app import create_app

__all__ = ["create_app"]
