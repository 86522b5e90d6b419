# Everyday commands. `make` alone lists them.
.PHONY: help install serve test lint fmt migrate

help:
	@echo "make install  - create .venv with MediaNest and the test tools"
	@echo "make serve    - run MediaNest on the embedded default (http://127.0.0.1:8080/)"
	@echo "make test     - lint, types and tests (scripts/test)"
	@echo "make lint     - ruff and mypy only"
	@echo "make fmt      - format the code with ruff"
	@echo "make migrate  - bring the database schema up to date"

install:
	python3 -m venv .venv
	.venv/bin/pip install -e '.[test]' -e examples/medianest-example

serve:
	.venv/bin/medianest serve

test:
	scripts/test

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

fmt:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

migrate:
	.venv/bin/medianest migrate
