"""The demo world with the example policy changed for detector and quota tests: support may
see private data on standard accounts, and the test's own `quotas:` and `detectors:`.

The changed policy is installed as the next version directly in the store (a test shortcut for
an approved `foureyes.policy.update`).
"""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import EXAMPLES
from tests.worlds import World, install_next_policy

SUPPORT_PRIVATE_VIEWS = {
    "id": "support-private-views-on-standard",
    "effect": "allow",
    "actions": ["account.view_private"],
    "when": '"support" in staff.groups && account.tier == "standard"',
}


def use_policy(
    world: World,
    *,
    quotas: list[dict[str, Any]] | None = None,
    detectors: dict[str, Any] | None = None,
) -> None:
    document = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    document["rules"].append(SUPPORT_PRIVATE_VIEWS)
    if quotas is not None:
        document["quotas"] = quotas
    if detectors is not None:
        document["detectors"] = detectors
    text = yaml.safe_dump(document, sort_keys=False, width=1_000_000)
    install_next_policy(world.services, text, world.clock.now)
