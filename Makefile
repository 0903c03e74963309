# occipy: `make run` starts the server, `make test` runs every test (installing what they need).
SHELL := /bin/bash
PYTHON ?= python3.11
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
OCCIPY_HOST ?= 127.0.0.1
OCCIPY_PORT ?= 8080
OCCIPY_DATA_DIR ?= ./data
OCCIPY_DRIVER ?= simulated
export OCCIPY_HOST OCCIPY_PORT OCCIPY_DATA_DIR OCCIPY_DRIVER

.PHONY: install run test lint bench clean dist image

# What `make install` adds: the libvirt driver's binding, and psycopg 3 when the store is
# PostgreSQL (OCCIPY_DATABASE_URL=postgresql://..., docs/scaleout.md).
PROFILES := base
EXTRAS :=
ifeq ($(OCCIPY_DRIVER),libvirt)
PROFILES += libvirt
EXTRAS += --extra libvirt
endif
ifneq (,$(filter postgres%,$(OCCIPY_DATABASE_URL)))
EXTRAS += --extra postgres
endif

install:
	@bash scripts/bootstrap.sh $(PROFILES)
	@$(UV) sync --frozen -p $(PYTHON) --quiet $(EXTRAS)

run: install
	$(UV) run --frozen -p $(PYTHON) occipy serve

lint: install
	$(UV) run --frozen -p $(PYTHON) lint-imports

test: install
	@bash scripts/run-tests.sh

bench: install
	@bash bench/run.sh

# A wheel and an sdist in $(DIST); the wheel carries the dashboard's files (docs/deploy.md).
DIST ?= dist
dist:
	@bash scripts/bootstrap.sh base
	rm -rf $(DIST)
	$(UV) build -p $(PYTHON) --out-dir $(DIST) --quiet
	@ls -1 $(DIST)

# The container image from the wheel (Dockerfile; needs a Docker engine).
IMAGE ?= occipy:latest
image: dist
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis data dist
