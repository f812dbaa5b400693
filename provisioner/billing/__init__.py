"""Billing sources: the billing systems that send the provisioner its hooks.

This package owns what a source is (``sources``: its webhook secrets, callback,
lifecycle authority, read from ``product_configs/billing.yaml``) and how a
service is named within one (``keys``: the (source, billing service id) pair and
the provisioner's own key for it). It imports only ``provisioner.configfiles``
and ``provisioner.config``; everything else may import it.
"""
