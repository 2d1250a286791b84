"""WSGI entry point for gunicorn: `gunicorn web.wsgi:app`."""

from web import create_app
from web.process import freeze_startup_heap

app = create_app()
freeze_startup_heap()
