# Two entry points: `make demo` and `make test` (each sets up .venv first if needed).
.PHONY: demo test lint format setup

.venv/.selftune-ready: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: .venv/.selftune-ready

demo: setup
	.venv/bin/selftune demo

lint: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks

test: lint
	.venv/bin/python -m pytest tests -q

format: setup
	.venv/bin/ruff format src tests benchmarks
	.venv/bin/ruff check --fix src tests benchmarks
