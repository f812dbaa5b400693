"""WSGI entry point for any WSGI server: ``gunicorn wsgi:app``."""
from provisioner import create_app

app = create_app()
