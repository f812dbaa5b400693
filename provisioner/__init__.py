"""provisioner: billing lifecycle events in, converged e-mail upstreams out."""
from __future__ import annotations

from flask import Flask

from .config import Settings
from .runtime import Runtime

__version__ = "0.1.0"

HOOK_BODY_LIMIT = 256 * 1024


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    """The web app. Secrets are required unless ``settings.dev`` (see Settings.require_secrets)."""
    if runtime is None:
        settings = settings or Settings.from_env()
        if not settings.dev:
            settings.require_secrets()
        runtime = Runtime(settings)
    app = Flask(__name__, instance_path=runtime.settings.instance_dir)
    app.config.update(
        SECRET_KEY=runtime.settings.secret_key,
        MAX_CONTENT_LENGTH=HOOK_BODY_LIMIT,
    )
    app.json.sort_keys = False  # answers read in the contract's order
    app.extensions["provisioner"] = runtime

    from .web import api, errors, health, hooks
    errors.init_app(app)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.docs_bp)
    app.register_blueprint(health.bp)
    from . import client
    client.init_app(app)
    from . import console
    console.init_app(app)
    if runtime.settings.trusted_proxies:
        # Behind a reverse proxy: take the client address from X-Forwarded-For
        # (the SSO rate limit counts per address).
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=runtime.settings.trusted_proxies,
                                x_proto=runtime.settings.trusted_proxies)
    return app
