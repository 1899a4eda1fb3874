"""The notification channels a policy's text names (`notify:` of rules, batch rules and
detectors), held to the channels the server configures (`[notify.<name>]` in foureyes.toml).

A notification to a channel that is not configured is dropped, silently and by design
(`foureyes.notify.outbox`: a row nobody can deliver is not queued). So a policy update
renaming `notify: [security]` to `[Security]` (or `" security"`, `secur1ty`) read as a
capitalisation tidy-up and turned off security's real-time view of VIT requests and of every
break-glass (attack pol10-F2). A proposed text's names are therefore held at submission and
at execution to the configured channels (`check_notify_channels`: PolicyError naming them);
`foureyes policy check` warns (`unconfigured_names`). Only names the text writes are held: a
detector's default (`[security]`) is not the text's to answer for. A server with no channel
configured at all sends nothing anywhere (its worker says so): names are not held there.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

from foureyes.errors import PolicyError
from foureyes.policy.compiler import Policy
from foureyes.policy.yamlsource import Loc, dotted
from foureyes.text.folding import fold

__all__ = ["NotifyName", "check_notify_channels", "notify_names", "unconfigured_names"]


@dataclass(frozen=True)
class NotifyName:
    """One channel name a policy's text writes, with where (`rules[3].notify[0]`)."""

    loc: Loc
    name: str
    owner: str  # "rule 'x'", "batch rule 'y'", "detector 'break_glass'"

    def where(self, policy: Policy) -> str:
        return policy.located(f"{self.owner} {dotted(self.loc)}", self.loc)


def notify_names(policy: Policy) -> Iterator[NotifyName]:
    """Each `notify:` name the text writes (rules, batch rules, detectors it configures)."""
    for i, rule in enumerate(policy.rules):
        for j, name in enumerate(rule.spec.notify):
            yield NotifyName(("rules", i, "notify", j), name, f"rule {rule.id!r}")
    for i, batch in enumerate(policy.batches):
        for j, name in enumerate(batch.spec.notify):
            yield NotifyName(("batches", i, "notify", j), name, f"batch rule {batch.id!r}")
    detectors = policy.document.detectors
    for detector in sorted(detectors.model_fields_set):
        settings = getattr(detectors, detector)
        if "notify" not in settings.model_fields_set:
            continue  # its default: not written by this text
        for j, name in enumerate(settings.notify):
            loc: Loc = ("detectors", detector, "notify", j)
            yield NotifyName(loc, name, f"detector {detector!r}")


def _problem(item: NotifyName, configured: Collection[str]) -> str | None:
    """Why `item` names no configured channel, or None when it names one."""
    if item.name in configured:
        return None
    listed = ", ".join(sorted(configured))
    alike = sorted(c for c in configured if fold(c) == fold(item.name) or _near(c, item.name))
    reads = f" (it reads as {alike[0]!r})" if alike else ""
    return (
        f"notify channel {item.name!r}{reads} is not a configured channel (configured: "
        f"{listed}): a notification to it would be dropped silently; name a configured "
        f"channel exactly, or configure [notify.{item.name.strip() or 'name'}] in foureyes.toml "
        "first"
    )


def _near(configured: str, name: str) -> bool:
    """Whether `name` is `configured` with its case, spaces or one character changed."""
    a, b = configured.strip().casefold(), name.strip().casefold()
    if a == b:
        return True
    if len(a) != len(b):
        return False
    return sum(1 for x, y in zip(a, b, strict=True) if x != y) <= 1


def check_notify_channels(policy: Policy, configured: Collection[str] | None) -> None:
    """Refuse (PolicyError, with the file, line and field) the first `notify:` name of
    `policy`'s text that is not one of `configured` (the server's channel names). Nothing is
    held when `configured` is None (the process has not said) or empty (no channel at all:
    nothing is sent anywhere)."""
    if not configured:
        return
    for item in notify_names(policy):
        problem = _problem(item, configured)
        if problem is not None:
            raise PolicyError(
                f"{item.owner}: {problem}",
                file=policy.source_file,
                line=policy.lines.get(item.loc),
                field=dotted(item.loc),
            )


def unconfigured_names(policy: Policy, configured: Collection[str]) -> list[str]:
    """What `foureyes policy check` says of each name not among `configured` (described)."""
    found = []
    for item in notify_names(policy):
        problem = (
            _problem(item, configured)
            if configured
            else (
                f"notify channel {item.name!r}: no channel is configured in foureyes.toml, so "
                "nothing is sent to it"
            )
        )
        if problem is not None:
            found.append(f"{item.where(policy)}: {problem}")
    return found
