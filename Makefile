# Tradeport — `make run` serves the portal on http://127.0.0.1:8000, `make test` runs the tests.
# Both create .venv on first use and reuse it afterwards.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck format migrate demo-users worker beat strategies check-deploy schema schema-check browser-deps clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP) migrate ## Serve the whole portal (embedded mode without env vars) with daphne (portal/asgi_server.py)
	$(BIN)/python manage.py collectstatic --no-input -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py backfill_history --days 7 --daily-days 400 --only-empty
	$(BIN)/python -m portal.asgi_server -b $(HOST) -p $(PORT) --ping-interval 10 --ping-timeout 10 --access-log /dev/null portal.asgi:application

test: $(STAMP) ## Run every test (SQLite + local memory without env; PostgreSQL + Redis with DATABASE_URL / REDIS_URL)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy with django-stubs on the services, selectors and API plumbing
	$(BIN)/mypy portal audit trading riskmgmt marketdata reports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --no-input

demo-users: $(STAMP)
	$(BIN)/python manage.py demo_users

worker: $(STAMP) ## Full stack: one Celery worker for every queue (needs REDIS_URL; compose runs one per queue group)
	OPENBLAS_NUM_THREADS=1 $(BIN)/celery -A portal worker -Q risk,reports,exports,default --loglevel=INFO

beat: $(STAMP) ## Full stack: Celery beat with the database scheduler (needs REDIS_URL)
	$(BIN)/celery -A portal beat --loglevel=INFO

strategies: $(STAMP) ## Full stack: the strategies' live runner (manage.py run_strategies)
	$(BIN)/python manage.py run_strategies

schema: $(STAMP) ## Regenerate the committed OpenAPI contract
	$(BIN)/python manage.py spectacular --file docs/openapi-v1.yaml --validate --fail-on-warn

schema-check: $(STAMP) ## Fail when the code's OpenAPI schema differs from docs/openapi-v1.yaml
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /tmp/tradeport-openapi.yaml
	diff -u docs/openapi-v1.yaml /tmp/tradeport-openapi.yaml

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles .pytest_cache .ruff_cache
