"""Kept for one release so that deferred tasks survive the upgrade: a ``fetch_<source>`` task deferred before
the move has ``transforms.remote.NewRemoteFilesTrigger`` stored as its trigger's class path in the
metadata database. The trigger now lives in ``transforms.orchestration.remote``; remove this module in the
release after next."""
from transforms.orchestration.remote import NewRemoteFilesTrigger

__all__ = ["NewRemoteFilesTrigger"]
