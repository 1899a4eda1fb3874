"""foureyes: four-eyes approval, policy and tamper-evident audit for platform admin tools.

The public API: `Guard` (the lifecycle, embedded), `Submission`, `load_policy` / `parse_policy`
(compile a policy against a `Catalog`), `decide` and `satisfied` (the pure engine).
"""

from foureyes.guard import Guard
from foureyes.policy.catalog import Catalog
from foureyes.policy.compiler import Policy, load_policy, parse_policy
from foureyes.policy.engine import decide, satisfied
from foureyes.workflow.submit import Denied, Submission

__version__ = "0.1.0.dev0"

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
