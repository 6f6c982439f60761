.DEFAULT_GOAL := help
PY ?= .venv/bin/python

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: ## editable install with dev tools, Debian tools, Kafka jars (what CI does)
	bash scripts/ci_setup.sh

test: ## the whole suite (unit, property, statistical, real broker)
	$(PY) -m pytest -q

test-fast: ## the pure core only: no broker, no slow statistics
	$(PY) -m pytest -q -m "not kafka and not slow" tests/unit stream_monitor

lint: ## ruff lint and format check
	ruff check . && ruff format --check stream_monitor tests scripts

typecheck: ## mypy --strict on the package
	mypy stream_monitor

bench: ## engine, join and service benchmarks (one JSON line each)
	$(PY) scripts/bench_engine.py
	$(PY) scripts/bench_join.py
	$(PY) scripts/bench_service.py

demo: ## the local demo on Kafka (Ctrl-C stops it)
	$(PY) -m stream_monitor demo

broker-start: ## a local Kafka broker on 127.0.0.1:9092
	$(PY) scripts/kafka_local.py start --port 9092

broker-stop: ## stop it
	$(PY) scripts/kafka_local.py stop --port 9092

.PHONY: help install test test-fast lint typecheck bench demo broker-start broker-stop
