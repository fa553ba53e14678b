"""Settings of the benchmark servers: the portal's own settings plus the bare view's URL.

Everything else (middleware, database, cache, rate limits) comes from the environment
exactly as in production; `bench/api_overhead.py` sets that environment.
"""

from portal.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.urls"
