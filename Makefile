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
export RECONCILE_TABLE ?= checkout-reconcile
export SUBSCRIPTIONS_TABLE ?= checkout-subscriptions
export REQUESTS_TABLE ?= checkout-requests
# Limited stock (the demo shop's poster: 3 units); unset it to sell without stock levels.
export STOCK_TABLE ?= checkout-stock
# The shop document (docs/shop.md): shipping, tax, custom fields, terms, per-account profiles.
export SHOP_POLICY_FILE ?= $(CURDIR)/examples/shop-policy.json
# Server calls (Authorization: Bearer) and customer tokens; local values, never for production.
export MERCHANT_API_KEY ?= mk_local_development_merchant_key_not_for_production
export CUSTOMER_TOKEN_SECRET ?= local-development-customer-token-secret-not-for-production
export PAYMENT_RETRY_URL ?= http://127.0.0.1:$(PORT)/returning?retry={PAYMENT_INTENT_ID}
export ACCESS_TABLE ?= checkout-access
# The reconciler runs every 5 minutes in AWS; locally every 30 s, re-driving after 60 s.
export RECONCILE_INTERVAL_SECS ?= 30
export RECONCILE_GRACE_SECS ?= 60
export MERCHANT_POSTAL_ADDRESS ?= Demo Shop, 1 rue de Rivoli, 75001 Paris, France
export UNSUBSCRIBE_SECRET ?= local-development-unsubscribe-secret-not-for-production
export PUBLIC_BASE_URL ?= http://127.0.0.1:$(PORT)
export MERCHANT_SHOP_URL ?= http://127.0.0.1:$(PORT)/
export CHECKOUT_SUCCESS_URL ?= http://127.0.0.1:$(PORT)/thanks?session_id={CHECKOUT_SESSION_ID}
export CHECKOUT_RETURN_URL ?= http://127.0.0.1:$(PORT)/thanks?session_id={CHECKOUT_SESSION_ID}
export CHECKOUT_CANCEL_URL ?= http://127.0.0.1:$(PORT)/
# The storefront calls create-session from its own origin (form posts and fetch send Origin).
export ALLOWED_ORIGINS ?= http://127.0.0.1:$(PORT),http://localhost:$(PORT)

# Deploy tools, pinned, in their own venv (aws-sam-cli and moto pin different boto3 ranges).
DEPLOY_VENV := .venv-deploy
DEPLOY_TOOLS := $(DEPLOY_VENV)/.installed
DEPLOY_BIN := $(abspath $(DEPLOY_VENV))/bin
FUNCTIONS := webhook create-session fulfillment recovery reconcile subscriptions
LAMBDA_TARGET := aarch64-unknown-linux-gnu
export SAM_CLI_TELEMETRY := 0

E2E_DIR := tests/e2e
# Where cargo puts binaries: `CARGO_TARGET_DIR`, a parent workspace's or `target/`, as cargo
# itself decides (read once, lazily, only by the targets that run a built binary).
TARGET_DIR = $(shell cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
CHROMIUM := /usr/bin/chromium

.PHONY: help dev test e2e storm lint bench bench-lambda fmt clean build validate sam-build deploy ops

help:
	@echo "make dev    run the whole bundle on http://127.0.0.1:$(PORT) (moto for AWS)"
	@echo "make test   run every test against a moto server it starts and stops"
	@echo "make e2e    the browser test: storefront, simulator, outbox in headless Chromium"
	@echo "make storm  the stack under a seeded workload, faults and a kill -9; checks exactly-once (STORM_CARTS, STORM_SEED, STORM_CONCURRENCY)"
	@echo "make lint   rustfmt and clippy, warnings as errors"
	@echo "make bench  criterion benchmarks"
	@echo "make bench-lambda  each function's release binary under a local Lambda Runtime API: init, cold, warm, RSS"
	@echo "make ops ARGS='explain cs_…'  the operator CLI against the running make dev"
	@echo "make validate  lint the SAM template offline (cfn-lint, sam validate --lint)"
	@echo "make build  release build of every function for Lambda arm64 (cargo lambda), with sizes"
	@echo "make deploy sam build && sam deploy --guided (needs AWS credentials; see README)"

$(MOTO):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'moto[server]==$(MOTO_VERSION)'

dev: $(MOTO)
	cargo build -p local-stack
	MOTO_ENDPOINT_FILE=.local/aws-endpoint infra/with-moto.sh "$(TARGET_DIR)/debug/local-stack"

# nextest (on the machine image) runs each test in its own process and ends on one summary
# line; plain cargo test is the fallback.
TEST_RUNNER := $(shell cargo nextest --version >/dev/null 2>&1 && echo "nextest run --no-fail-fast" || echo test)

$(DEPLOY_TOOLS):
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet 'cargo-lambda==1.9.2' 'cfn-lint==1.58.0' 'aws-sam-cli==1.170.0'
	touch $@

validate: $(DEPLOY_TOOLS)
	$(DEPLOY_BIN)/cfn-lint infra/template.yaml
	$(DEPLOY_BIN)/sam validate --lint --template infra/template.yaml --region us-east-1
	$(DEPLOY_BIN)/python infra/lint_transformed.py infra/template.yaml

# cargo-lambda cross-compiles with zig (the ziglang wheel), so only Rust's std for the target
# is needed besides.
build: $(DEPLOY_TOOLS)
	@rustup target list --installed 2>/dev/null | grep -qx $(LAMBDA_TARGET) || rustup target add $(LAMBDA_TARGET)
	PATH=$(DEPLOY_BIN):$$PATH cargo lambda build --release --arm64 $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do \
	  bin="$(TARGET_DIR)/lambda/$$f/bootstrap"; \
	  printf '%-15s %9d bytes  %s\n' $$f $$(stat -c %s "$$bin") "$$(file -b "$$bin" | cut -d, -f1-2)"; \
	done

sam-build: $(DEPLOY_TOOLS)
	@rustup target list --installed 2>/dev/null | grep -qx $(LAMBDA_TARGET) || rustup target add $(LAMBDA_TARGET)
	PATH=$(DEPLOY_BIN):$$PATH sam build --template infra/template.yaml --beta-features

deploy: sam-build
	PATH=$(DEPLOY_BIN):$$PATH sam deploy --guided --capabilities CAPABILITY_IAM

test: $(MOTO)
	cargo build --workspace --all-targets
	infra/with-moto.sh cargo $(TEST_RUNNER) --workspace --all-targets

# Debian's Chromium and the pinned playwright-core (no browser download of its own).
$(CHROMIUM):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

$(E2E_DIR)/node_modules: $(E2E_DIR)/package-lock.json
	npm ci --prefix $(E2E_DIR) --no-audit --no-fund
	touch $@

# On its own ports and with the simulator (no Stripe key), so it runs beside `make dev`.
e2e: export PORT = 9100
e2e: export STRIPE_SIMULATOR_PORT = 12211
e2e: export STRIPE_SECRET_KEY =
e2e: $(MOTO) $(CHROMIUM) $(E2E_DIR)/node_modules
	cargo build -p local-stack
	LOCAL_STACK="$(TARGET_DIR)/debug/local-stack" infra/e2e.sh

# The local stack under a seeded random workload, webhooks duplicated and out of order, Stripe,
# SES and DynamoDB faults and a kill -9, then the exactly-once and nothing-lost invariants
# (docs/storm.md). The storm starts its own moto, simulator and stack on free ports, so it
# runs beside `make dev`; its logs and report go to .local/storm-<seed>/.
storm: $(MOTO)
	cargo build -p local-stack -p storm
	AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	  STORM_STACK_BIN="$(TARGET_DIR)/debug/local-stack" "$(TARGET_DIR)/debug/storm"

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench -p checkout-core --bench webhook

# Each function's native release binary started as Lambda starts it, under the Runtime API
# emulator of infra/bench-lambda, against moto and an in-process stub (docs/bench-lambda.md).
# The emulator gets its own profile (release without LTO), so its build neither waits on a
# fat-LTO link nor touches the functions' release artifacts. Everything runs on core 0 except
# the functions, which the emulator puts on core 1. BENCH_INVOCATIONS, BENCH_COLD_STARTS,
# BENCH_FUNCTIONS, BENCH_BACKENDS (stub,moto) and BENCH_SECRETS (ssm, env) are passed through.
# A moto at AWS_ENDPOINT_URL is used as is; the one started here is emptied before each row.
BENCH_LAMBDA_PROFILE := --profile bench-lambda --config 'profile.bench-lambda.inherits="release"' \
  --config 'profile.bench-lambda.lto=false' --config 'profile.bench-lambda.codegen-units=16' \
  --config 'profile.bench-lambda.opt-level=2'

bench-lambda: $(MOTO)
	cargo build --release $(addprefix -p ,$(FUNCTIONS))
	cargo build $(BENCH_LAMBDA_PROFILE) -p bench-lambda
	@pin=$$(command -v taskset >/dev/null && [ "$$(nproc --all)" -ge 2 ] && echo "taskset -c 0"); \
	  moto=$$(case "$${BENCH_BACKENDS:-stub,moto}" in *moto*) echo infra/with-moto.sh;; esac); \
	  reset=$$([ -z "$${AWS_ENDPOINT_URL:-}" ] && echo 1); \
	  BENCH_BIN_DIR="$(TARGET_DIR)/release" BENCH_MOTO_RESET=$$reset $$pin $$moto "$(TARGET_DIR)/bench-lambda/bench-lambda"

# `ops reconcile|explain|redrive` against the moto of the running `make dev` (infra/with-moto.sh
# writes its endpoint to .local/aws-endpoint), or against AWS when AWS_ENDPOINT_URL is set
# to nothing and credentials are configured.
ops:
	AWS_ENDPOINT_URL=$${AWS_ENDPOINT_URL-$$(cat .local/aws-endpoint)} AWS_REGION=$${AWS_REGION:-us-east-1} \
	  AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-testing} \
	  cargo run -q -p ops -- $(ARGS)

fmt:
	cargo fmt --all

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) .local .aws-sam target
