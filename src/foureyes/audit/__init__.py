"""The tamper-evident audit log: an RFC 9162 Merkle tree over RFC 8785 events, C2SP checkpoints.

- `merkle` — the tree, proofs and their verification (pure);
- `checkpoint` — signed notes and checkpoints, keys (pure);
- `canonical` — RFC 8785 canonical JSON;
- `log` — `AuditLog`: append in the caller's transaction, proofs, checkpoints, search;
- `edges` — the tree's right edge as this process last committed it, which the next append
  resumes from instead of reading it back;
- `verify` — `verify_log` (recompute and check everything in the database), `export_log`;
- `copies` — `check_copies`: the indexed columns against the events, as filters see them;
- `schedule` — `CheckpointSchedule`: every worker signs and witnesses checkpoints;
- `export` — the diagnoses, witness directories, the export format and `verify_export`, which
  needs no database.

The names below that live on the database side (`AuditLog` and its values, `verify_log`,
`export_log`) are imported on first use, so importing this package for the pure parts — a
verifier of exports — does not load the database layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from foureyes.audit.checkpoint import Checkpoint, CheckpointError, Signer, Verifier
from foureyes.audit.export import (
    AuditVerificationError,
    Tamper,
    VerifyReport,
    read_witness,
    verify_export,
    write_witness,
)
from foureyes.audit.merkle import MerkleVerificationError

if TYPE_CHECKING:
    from foureyes.audit.log import (
        AuditLog,
        ConsistencyProof,
        Event,
        InclusionProof,
        NewEvent,
        SignedCheckpoint,
    )
    from foureyes.audit.verify import export_log, verify_log

__all__ = [
    "AuditLog",
    "AuditVerificationError",
    "Checkpoint",
    "CheckpointError",
    "ConsistencyProof",
    "Event",
    "InclusionProof",
    "MerkleVerificationError",
    "NewEvent",
    "SignedCheckpoint",
    "Signer",
    "Tamper",
    "Verifier",
    "VerifyReport",
    "export_log",
    "read_witness",
    "verify_export",
    "verify_log",
    "write_witness",
]

_LAZY = {
    "AuditLog": "foureyes.audit.log",
    "ConsistencyProof": "foureyes.audit.log",
    "Event": "foureyes.audit.log",
    "InclusionProof": "foureyes.audit.log",
    "NewEvent": "foureyes.audit.log",
    "SignedCheckpoint": "foureyes.audit.log",
    "export_log": "foureyes.audit.verify",
    "verify_log": "foureyes.audit.verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
