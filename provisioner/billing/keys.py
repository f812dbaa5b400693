"""How a service is named: by its billing source and the billing system's own id.

Two billing systems may both have a service 5001; they are two services. The
provisioner keys each service (``services.id``, the key jobs, events, SSO
tokens and client sessions refer to, and the name it gives the service
upstream) by ``service_key``: the billing id itself for the ``default`` source,
so single-source set-ups keep the names they always had, and
``{source}:{billing id}`` for every other source. Source names cannot hold a
colon, so two sources never share a key; a default-source id that happens to
read ``{source}:{id}`` is refused at intake rather than merged (the key is the
primary key).
"""
from __future__ import annotations

DEFAULT_SOURCE = "default"
#: longest source name (billing.yaml); with 64-character billing ids a key fits in 128
MAX_SOURCE_NAME = 32
MAX_KEY = 128


def service_key(source: str, billing_id: str) -> str:
    """The provisioner's key of billing service ``billing_id`` of ``source``."""
    return billing_id if source == DEFAULT_SOURCE else f"{source}:{billing_id}"
