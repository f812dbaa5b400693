"""Upstream adapters: one Provider subclass per e-mail platform."""
