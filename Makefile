# The two commands a newcomer needs (see README.md). Each sets itself up.
.PHONY: demo test lint

demo:
	scripts/setup.sh demo
	.venv/bin/cwatch demo

test:
	scripts/setup.sh dev
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check .
