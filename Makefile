# Each target is a one-liner; `make help` lists them.
ENV_FILE ?= $(if $(wildcard .env),.env,.env.example)
IMAGE ?= webhook-api
.PHONY: help run test lint fuzz schemathesis bench static footprint up dev down logs test-docker

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

run: ## start the service with the settings of .env (or .env.example)
	set -a && . ./$(ENV_FILE) && set +a && cargo run --release --locked

test: ## run every test (unit, over real sockets, fault injection); installs promtool if it can
	@bash .ci/promtool
	cargo test --locked --features fault-injection

fuzz: ## a million seeded inputs into each parser (FUZZ_SEED=n to vary), release build
	FUZZ_ITERATIONS=$${FUZZ_ITERATIONS:-1000000} cargo test --release --locked --test fuzz -- --nocapture

schemathesis: ## the whole API from its own /openapi.json with schemathesis (PyPI): no 5xx, no crash
	bash .ci/schemathesis

bench: ## load benchmark over loopback (BENCH_SECS, BENCH_ROWS): prints a markdown table
	cargo build --release --locked && cargo run --release --locked --example bench -- target/release/webhook-api

static: ## a fully static binary on this machine: target/x86_64-unknown-linux-gnu/release/webhook-api
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target x86_64-unknown-linux-gnu

footprint: static ## size, time to ready, idle RSS and RSS after a minute of load of the static binary
	cargo run --release --locked --example bench -- footprint target/x86_64-unknown-linux-gnu/release/webhook-api

lint: ## formatting and clippy, warnings are errors
	cargo fmt --check && cargo clippy --locked --all-targets -- -D warnings

up: ## build the image and run it detached on port 8000 with a named volume on /data
	docker build -t $(IMAGE) . && docker run -d --name $(IMAGE) -p 8000:8000 -v $(IMAGE)-data:/data --env-file $(ENV_FILE) $(IMAGE)

dev: ## run locally with debug logs, rebuilding on every start
	set -a && . ./$(ENV_FILE) && set +a && LOG_LEVEL=DEBUG cargo run --locked

down: ## stop and remove the container and its volume
	docker rm -f $(IMAGE); docker volume rm $(IMAGE)-data

logs: ## follow the container's logs
	docker logs -f $(IMAGE)

test-docker: ## run the tests inside the builder image
	docker build --target build -t $(IMAGE):build . && docker run --rm $(IMAGE):build cargo test --locked
