"""The gateway's endpoints, one router per area."""

from libnar._gateway.routers import admin, claims, events, health

__all__ = ["admin", "claims", "events", "health"]
