# Each target is a one-liner; `make help` lists them.
ENV_FILE ?= $(if $(wildcard .env),.env,.env.example)
IMAGE ?= webhook-api
# `make up DOCKER=podman` (or export it) runs every container target with podman.
DOCKER ?= docker
# The published port follows PORT: from the caller, else the env file, else 8000.
PORT ?= $(or $(shell sed -n 's/^PORT=//p' $(ENV_FILE) 2>/dev/null),8000)
.PHONY: help run test loc lint mutants fuzz schemathesis bench static footprint image up restart dev down delete-data backup logs test-docker

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

# Extra `docker run` flags (the podman check passes its runtime and ulimits here).
RUN_FLAGS ?=

image: ## build the image (make up does this first)
	$(DOCKER) build -t $(IMAGE) .

up: image ## build the image and (re)start the container on $PORT, keeping the data volume; also the upgrade path
	($(DOCKER) rm -f $(IMAGE) >/dev/null 2>&1 || true) && $(DOCKER) run -d --name $(IMAGE) $(RUN_FLAGS) -p $(PORT):$(PORT) -e PORT=$(PORT) -v $(IMAGE)-data:/data --env-file $(ENV_FILE) $(IMAGE)

restart: ## restart the container (SIGTERM, then start again); the data stays
	$(DOCKER) restart $(IMAGE)

dev: ## run locally with debug logs, rebuilding on every start
	@$(LOAD_ENV) && LOG_LEVEL=$${LOG_LEVEL:-DEBUG} cargo run --locked

down: ## stop and remove the container; the data volume stays
	$(DOCKER) rm -f $(IMAGE)

delete-data: ## DELETES the data volume and every message in it (the container must be down)
	$(DOCKER) volume rm $(IMAGE)-data

backup: ## a consistent, checked copy of the container's database: make backup FILE=/data/backup-1.db
	$(DOCKER) exec $(IMAGE) /webhook-api backup $(FILE)

logs: ## follow the container's logs (JSON lines only: make logs | jq -c .)
	@$(DOCKER) logs -f $(IMAGE)

test-docker: ## every test, fault injection included, inside the builder image (no root, no promtool there)
	$(DOCKER) build --target build -t $(IMAGE):build . && $(DOCKER) run --rm -e SKIP_TESTS=promtool,tmpfs $(IMAGE):build cargo test --locked --features fault-injection
