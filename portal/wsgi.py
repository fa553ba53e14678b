"""WSGI entry point: gunicorn serves HTTP in the full stack (docs/adr/0001)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

application = get_wsgi_application()
