# Handoff — the two commands a newcomer needs are `make run` and `make test`.
# Everything else they call installs itself on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TENANT ?= acme
AGENT ?= support
ROLE ?= editor
# promtool, unpacked from Debian's `prometheus` package (no server installed or started).
PROMTOOL := $(HOME)/.cache/handoff/promtool/usr/bin/promtool

.PHONY: run test deps system-deps lint schemas schemas-check alerts-check docs bench jars agent token demo unit integration clean

run: deps ## the whole system on local Kafka + Redis (Ctrl-C stops it; MINUTE=5: an idle-timeout minute lasts 5 s)
	@echo "Console: http://127.0.0.1:$${HANDOFF_HANDOFF_HTTP_PORT:-8080}/console/  (sign in with: make token TENANT=acme ROLE=editor)"
	$(if $(MINUTE),HANDOFF_MINUTE_SECONDS=$(MINUTE) )$(PY) -m devstack.system --data .run

demo: $(STAMP) ## the checklist paths (mode and human side) against the stack of `make run` (run it first)
	$(PY) -m services.demo

test: deps ## lint, schema freshness, unit and integration tests on real Kafka and Redis
	$(MAKE) --no-print-directory lint schemas-check alerts-check
	$(PY) -m pytest -q
	@echo "The rule tests again, on a three-master Redis Cluster:"
	HANDOFF_TEST_REDIS_CLUSTER=1 $(PY) -m pytest -q tests/integration/test_rules.py tests/integration/test_r1[4-8]_*.py

unit: deps
	$(PY) -m pytest -q tests/unit

integration: deps
	$(PY) -m pytest -q tests/integration

deps: $(STAMP) system-deps jars

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

system-deps: ## redis-server, Java 17 + Maven (Kafka's jars), Chromium (browser tests), from apt; promtool
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@test -x $(PROMTOOL) || { \
	  echo "unpacking promtool from Debian's prometheus package"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  tmp=$$(mktemp -d) && cd $$tmp && \
	  { apt-get download -qq prometheus 2>/dev/null || { $$SUDO apt-get update -qq && apt-get download -qq prometheus; }; } && \
	  mkdir -p $(HOME)/.cache/handoff/promtool && \
	  dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x -C $(HOME)/.cache/handoff/promtool ./usr/bin/promtool && \
	  rm -rf $$tmp; }

jars: $(STAMP) ## Kafka's jars from Maven Central into ~/.cache/handoff, and a JVM start-up archive (once)
	$(PY) -m devstack jars

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services schemas devstack bench

schemas: $(STAMP) ## regenerate schemas/json from the models
	$(PY) -m schemas

schemas-check: $(STAMP) ## the generated JSON Schema and AsyncAPI files are up to date
	$(PY) -m schemas --check
	$(PY) -m schemas.asyncapi --check

bench: deps ## benchmarks, not in CI: figures printed and saved in bench/results/ (~35 min)
	$(PY) -m bench.route_throughput --profile
	$(PY) -m bench.route_latency
	$(PY) -m bench.scale_out
	$(PY) -m bench.timeout_sweep
	$(PY) -m bench.memory

alerts-check: system-deps ## the Prometheus alert rules are valid and fire when they should
	$(PROMTOOL) check rules deploy/prometheus/alerts.yml
	$(PROMTOOL) test rules deploy/prometheus/alerts_test.yml

docs: $(STAMP) ## regenerate schemas/asyncapi.json from the models
	$(PY) -m schemas.asyncapi

token: $(STAMP) ## print a dev operator token (TENANT, ROLE=viewer|editor|admin, SUB=operator id)
	@$(PY) -m services.handoff.api.token --tenant $(TENANT) --role $(ROLE) $(if $(SUB),--sub $(SUB))

agent: $(STAMP) ## apply + publish an agent version with handoff on (TENANT, AGENT, IDLE=minutes)
	$(PY) -m services.handoff.agents apply --tenant $(TENANT) --agent $(AGENT) --enabled \
	  $(if $(IDLE),--idle-timeout $(IDLE)) --publish

clean:
	rm -rf .run
