"""foureyes: four-eyes approval, policy and tamper-evident audit for platform admin tools.

The public API: `Guard` (the lifecycle, embedded), `Submission`, `load_policy` / `parse_policy`
(compile a policy against a `Catalog`), `decide` and `satisfied` (the pure engine).

Names are loaded on first use, so that importing one small module (say `foureyes.webhook` in a
receiver) does not pull in the whole server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "Catalog": "foureyes.policy.catalog",
    "Denied": "foureyes.workflow.submit",
    "Guard": "foureyes.guard",
    "Policy": "foureyes.policy.compiler",
    "Submission": "foureyes.workflow.submit",
    "decide": "foureyes.policy.engine",
    "load_policy": "foureyes.policy.compiler",
    "parse_policy": "foureyes.policy.compiler",
    "satisfied": "foureyes.policy.engine",
}

__all__ = [
    "Catalog",
    "Denied",
    "Guard",
    "Policy",
    "Submission",
    "__version__",
    "decide",
    "load_policy",
    "parse_policy",
    "satisfied",
]

if TYPE_CHECKING:  # what `__getattr__` hands out, for type checkers
    from foureyes.guard import Guard as Guard
    from foureyes.policy.catalog import Catalog as Catalog
    from foureyes.policy.compiler import Policy as Policy
    from foureyes.policy.compiler import load_policy as load_policy
    from foureyes.policy.compiler import parse_policy as parse_policy
    from foureyes.policy.engine import decide as decide
    from foureyes.policy.engine import satisfied as satisfied
    from foureyes.workflow.submit import Denied as Denied
    from foureyes.workflow.submit import Submission as Submission


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'foureyes' has no attribute {name!r}")
    return getattr(import_module(module), name)
