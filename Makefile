# Each target is a one-liner; `make help` lists them.
ENV_FILE ?= $(if $(wildcard .env),.env,.env.example)
IMAGE ?= webhook-api
.PHONY: help run test loc lint mutants fuzz schemathesis bench static footprint up dev down logs test-docker

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

# The env file fills in what the caller's environment does not set (`PORT=8001 make run` wins).
LOAD_ENV = saved=$$(export -p) && set -a && . ./$(ENV_FILE) && set +a && eval "$$saved"

run: ## start the service with the settings of .env (or .env.example); your environment wins
	@$(LOAD_ENV) && cargo run --release --locked

test: ## run every test (unit, over real sockets, fault injection); installs promtool if it can
	@bash .ci/promtool
	cargo test --locked --features fault-injection

fuzz: ## a million seeded inputs into each parser (FUZZ_SEED=n to vary), release build
	FUZZ_ITERATIONS=$${FUZZ_ITERATIONS:-1000000} cargo test --release --locked --test fuzz -- --nocapture

mutants: ## cargo-mutants over the contract's modules (.cargo/mutants.toml); survivors must be in mutants.md
	@bash .ci/promtool
	command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
	PROMTOOL=$(CURDIR)/target/tools/promtool FUZZ_ITERATIONS=2000 cargo mutants $(MUTANTS_ARGS)

schemathesis: ## the whole API from its own /openapi.json with schemathesis (PyPI): no 5xx, no crash
	bash .ci/schemathesis

bench: ## load benchmark over loopback (BENCH_SECS, BENCH_ROWS): prints a markdown table
	cargo build --release --locked && cargo run --release --locked --example bench -- target/release/webhook-api

static: ## a fully static binary on this machine: target/x86_64-unknown-linux-gnu/release/webhook-api
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target x86_64-unknown-linux-gnu

footprint: static ## size, time to ready, idle RSS and RSS after a minute of load of the static binary
	cargo run --release --locked --example bench -- footprint target/x86_64-unknown-linux-gnu/release/webhook-api

loc: ## non-test lines of each file in src/ (its lines before #[cfg(test)]); budget 3,300, 450 a file
	@find src -name '*.rs' | while read -r f; do printf '%5d %s\n' "$$(awk '/^#\[cfg\(test\)\]/{exit} {n++} END{print n+0}' "$$f")" "$$f"; done | sort -n | awk '{print; s+=$$1} END {printf "%5d total (budget 3300, at most 450 a file)\n", s}'

lint: ## formatting and clippy, warnings are errors
	cargo fmt --check && cargo clippy --locked --all-targets -- -D warnings

up: ## build the image and run it detached on port 8000 with a named volume on /data
	docker build -t $(IMAGE) . && docker run -d --name $(IMAGE) -p 8000:8000 -v $(IMAGE)-data:/data --env-file $(ENV_FILE) $(IMAGE)

dev: ## run locally with debug logs, rebuilding on every start
	@$(LOAD_ENV) && LOG_LEVEL=$${LOG_LEVEL:-DEBUG} cargo run --locked

down: ## stop and remove the container and its volume
	docker rm -f $(IMAGE); docker volume rm $(IMAGE)-data

logs: ## follow the container's logs
	docker logs -f $(IMAGE)

test-docker: ## run the tests inside the builder image
	docker build --target build -t $(IMAGE):build . && docker run --rm $(IMAGE):build cargo test --locked
