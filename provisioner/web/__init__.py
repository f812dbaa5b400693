"""Flask blueprints: thin views over the plain functions of the package."""
from flask import current_app

from ..runtime import Runtime


def current_runtime() -> Runtime:
    return current_app.extensions["provisioner"]
