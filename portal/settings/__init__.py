"""Tradeport settings, assembled from topic modules.

Every value comes from one `env` (see `base.py`); with no environment variables set
the embedded defaults of DESIGN §3 apply (SQLite, local-memory cache, in-memory
channel layer, Celery tasks run in-process).
"""

from .base import *  # noqa: F401,F403
from .celery import *  # noqa: F401,F403
from .channels import *  # noqa: F401,F403
from .drf import *  # noqa: F401,F403
from .logging import *  # noqa: F401,F403
from .security import *  # noqa: F401,F403
