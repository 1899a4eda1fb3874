"""The HTTP API (`/v1`, JSON, RFC 9457 problems, bearer tokens) over the lifecycle operations.

`create_api(services, settings)` makes its routes; `foureyes.bootstrap.create_app` puts them
together with the console, and `foureyes.server.run` serves that with the background worker
(that is what `foureyes serve` does).
"""
