"""Simulators of the upstream providers' HTTP APIs, for tests and ``make run``."""
