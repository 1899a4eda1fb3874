"""What `foureyes serve --demo` turns on, and nothing else can.

A demo server differs from a real one in two ways, both for a newcomer on a machine of their
own who has no security key for each of the demo's people:

- **Step-up with the demo keys the server holds.** `serve --demo` made an Ed25519 step-up key
  per demo person and keeps the private halves in `<data-dir>/demo-keys/`. The console of a
  demo server offers, clearly labelled, to confirm a review with the signed-in person's demo
  key: the server signs the review's challenge with it (`foureyes.workflow.demo`) and the
  review is verified as any device-key step-up is. The verifier is not changed: the demo only
  holds a key a real person would hold.
- **A shorter delay** after approval (`serve --demo --demo-delay 30s`): `Services.delay_for`
  caps a rule's `delay` by it, so the 2017 story runs to `executed` in the browser.

`DemoMode` is made only by `serve --demo` (and by the serving processes of `serve --demo
--workers N`, from what that same command hands them): it is not a setting, a header or a
request field, and `Settings` refuses unknown keys. Without it (`Services.demo` None) the demo
console routes are not mounted, and no server holds private step-up keys anyway (`foureyes
staff enroll-key` takes public keys only).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from foureyes.errors import BadInput, NotFound

__all__ = ["DEMO_KEYS", "DEMO_MARKER", "DemoMode"]

DEMO_KEYS = "demo-keys"
DEMO_MARKER = "DEMO"  # a file in the data directory: made by `serve --demo`, holds demo people
_STAFF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


@dataclass(frozen=True)
class DemoMode:
    """A demo server's data directory (made by `serve --demo`: it has the `DEMO` marker) and
    the delay its approvals wait at most (None: the policy's)."""

    data_dir: Path
    delay: timedelta | None = None

    def __post_init__(self) -> None:
        if not (self.data_dir / DEMO_MARKER).is_file():
            raise BadInput(f"{self.data_dir} was not made by `foureyes serve --demo`")
        if self.delay is not None and self.delay <= timedelta(0):
            raise BadInput("the demo's delay must be positive")

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / DEMO_KEYS

    def to_json(self) -> str:
        """What `serve --demo --workers N` hands its serving processes (`from_json`)."""
        delay = None if self.delay is None else self.delay.total_seconds()
        return json.dumps({"data_dir": str(self.data_dir), "delay_seconds": delay})

    @classmethod
    def from_json(cls, text: str) -> DemoMode:
        value = json.loads(text)
        delay = value.get("delay_seconds")
        return cls(Path(value["data_dir"]), None if delay is None else timedelta(seconds=delay))

    def key(self, staff_id: str) -> Ed25519PrivateKey:
        """The demo step-up key of `staff_id` (NotFound if the demo made none for them)."""
        path = self.keys_dir / f"{staff_id}.pem"
        if not _STAFF_ID.match(staff_id) or not path.is_file():
            raise NotFound(f"the demo holds no step-up key for {staff_id!r}")
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise NotFound(f"the demo holds no step-up key for {staff_id!r}")
        return key
