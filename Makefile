# Two entry points: `make demo` and `make test` (each sets up .venv first if needed).
.PHONY: demo test lint format setup setup-dev

.venv/.selftune-ready: pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh

.venv/.selftune-dev-ready: pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh dev

setup: .venv/.selftune-ready

setup-dev: .venv/.selftune-dev-ready

demo: setup
	.venv/bin/selftune demo

lint: setup-dev
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks

test: lint
	.venv/bin/python -m pytest tests -q

format: setup-dev
	.venv/bin/ruff format src tests benchmarks
	.venv/bin/ruff check --fix src tests benchmarks
