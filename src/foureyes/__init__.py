"""foureyes: four-eyes approval, policy and tamper-evident audit for platform admin tools."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
