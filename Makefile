# The two set-up commands are `make dev` and `make test`; both install what they need into
# the project (a Python venv with moto) on first use.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
MOTO := $(VENV)/bin/moto_server
MOTO_VERSION := 5.2.5

# Development defaults: local table names and a webhook secret for locally signed events.
# Set any of them in the environment to override.
export EVENTS_TABLE ?= checkout-events
export STRIPE_WEBHOOK_SECRET ?= whsec_local_development_secret
export PORT ?= 9000
export SESSIONS_TABLE ?= checkout-sessions
export ORDERS_TABLE ?= checkout-orders
export MAIL_FROM ?= orders@shop.example
export MERCHANT_NAME ?= Demo Shop
export RECOVERY_TABLE ?= checkout-recovery
export MERCHANT_POSTAL_ADDRESS ?= Demo Shop, 1 rue de Rivoli, 75001 Paris, France
export UNSUBSCRIBE_SECRET ?= local-development-unsubscribe-secret-not-for-production
export PUBLIC_BASE_URL ?= http://127.0.0.1:$(PORT)
export MERCHANT_SHOP_URL ?= http://127.0.0.1:$(PORT)/
export CHECKOUT_SUCCESS_URL ?= http://127.0.0.1:$(PORT)/checkout/complete?session_id={CHECKOUT_SESSION_ID}
export CHECKOUT_RETURN_URL ?= http://127.0.0.1:$(PORT)/checkout/complete?session_id={CHECKOUT_SESSION_ID}
export CHECKOUT_CANCEL_URL ?= http://127.0.0.1:$(PORT)/

.PHONY: help dev test lint bench fmt clean

help:
	@echo "make dev    run the whole bundle on http://127.0.0.1:$(PORT) (moto for AWS)"
	@echo "make test   run every test against a moto server it starts and stops"
	@echo "make lint   rustfmt and clippy, warnings as errors"
	@echo "make bench  criterion benchmarks"

$(MOTO):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'moto[server]==$(MOTO_VERSION)'

dev: $(MOTO)
	cargo build -p local-stack
	infra/with-moto.sh target/debug/local-stack

# nextest (on the machine image) runs each test in its own process and ends on one summary
# line; plain cargo test is the fallback.
TEST_RUNNER := $(shell cargo nextest --version >/dev/null 2>&1 && echo "nextest run --no-fail-fast" || echo test)

test: $(MOTO)
	cargo build --workspace --all-targets
	infra/with-moto.sh cargo $(TEST_RUNNER) --workspace --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench -p checkout-core --bench webhook

fmt:
	cargo fmt --all

clean:
	rm -rf $(VENV) .local target
