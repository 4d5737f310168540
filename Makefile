# Each target is a one-liner; `make help` lists them.
ENV_FILE ?= $(if $(wildcard .env),.env,.env.example)
IMAGE ?= webhook-api
# `make up DOCKER=podman` (or export it) runs every container target with podman.
DOCKER ?= docker
# The published port follows PORT: from the caller, else the env file, else 8000.
PORT ?= $(or $(shell sed -n 's/^PORT=//p' $(ENV_FILE) 2>/dev/null),8000)
# The container listens on all its interfaces; HOST (caller, env file, else 0.0.0.0) is where its port is published.
HOST ?= $(or $(shell sed -n 's/^HOST=//p' $(ENV_FILE) 2>/dev/null),0.0.0.0)
.PHONY: help run test loc lint mutants fuzz schemathesis bench static footprint image up restart dev down delete-data backup backup-docker logs test-docker

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

# The env file fills in what the caller's environment does not set (`PORT=8001 make run` wins).
LOAD_ENV = saved=$$(export -p) && set -a && . ./$(ENV_FILE) && set +a && eval "$$saved"

run: ## start the service with the settings of .env (or .env.example); your environment wins
	@$(LOAD_ENV) && cargo run --release --locked

test: ## every test (unit, real sockets, fault injection); needs root and promtool, or SKIP_TESTS=tmpfs,promtool
	@bash .ci/test-needs
	cargo test --locked --features fault-injection

fuzz: ## a million seeded inputs into each parser (FUZZ_SEED=n to vary), release build
	FUZZ_ITERATIONS=$${FUZZ_ITERATIONS:-1000000} cargo test --release --locked --test fuzz -- --nocapture

mutants: ## cargo-mutants over the contract's modules (.cargo/mutants.toml); survivors must be in mutants.md
	@bash .ci/promtool
	command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
	PROMTOOL=$(CURDIR)/target/tools/promtool FUZZ_ITERATIONS=2000 cargo mutants $(MUTANTS_ARGS)

schemathesis: ## the whole API from its own /openapi.json with schemathesis (PyPI): no 5xx, no crash
	bash .ci/schemathesis

bench: ## load benchmark over loopback (BENCH_SECS, BENCH_ROWS, BENCH_ONLY=read, BENCH_PEER=<binary>): prints markdown tables
	cargo build --release --locked && cargo run --release --locked --example bench -- target/release/webhook-api

static: ## a fully static binary on this machine: target/x86_64-unknown-linux-gnu/release/webhook-api
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target x86_64-unknown-linux-gnu

footprint: static ## size, time to ready, idle RSS and RSS after a minute of load of the static binary
	cargo run --release --locked --example bench -- footprint target/x86_64-unknown-linux-gnu/release/webhook-api

loc: ## src/ lines of code (before #[cfg(test)], without blank and // lines; budget 4,500) and each file's lines before its tests (450 at most)
	@printf ' code lines file\n'; find src -name '*.rs' | sort | while read -r f; do awk '/^#\[cfg\(test\)\]/{exit} {t++} !/^[ \t]*(\/\/|$$)/{c++} END{printf "%5d %5d %s\n", c, t, FILENAME}' "$$f"; done | sort -n | awk '{print; s+=$$1} $$2>450{over=over" "$$3} END{printf "%5d lines of code in all (budget 4500); files over 450 lines:%s\n", s, over ? over : " none"}'

lint: ## formatting and clippy, warnings are errors
	cargo fmt --check && cargo clippy --locked --all-targets -- -D warnings

# Extra `docker run` flags (the podman check passes its runtime and ulimits here).
RUN_FLAGS ?=

image: ## build the image (make up does this first)
	$(DOCKER) build -t $(IMAGE) .

up: image ## build the image and (re)start the container on $HOST:$PORT, keeping the data volume; also the upgrade path
	($(DOCKER) rm -f $(IMAGE) >/dev/null 2>&1 || true) && $(DOCKER) run -d --name $(IMAGE) $(RUN_FLAGS) -p $(if $(findstring :,$(HOST)),[$(HOST)],$(HOST)):$(PORT):$(PORT) -e PORT=$(PORT) -e HOST=0.0.0.0 -v $(IMAGE)-data:/data --env-file $(ENV_FILE) $(IMAGE)

restart: ## restart the container (SIGTERM, then start again); the data stays
	$(DOCKER) restart $(IMAGE)

backup: ## a consistent, checked copy of make run's database while it runs (same settings): make backup FILE=backup-1.db
	@test -n "$(FILE)" || { echo "usage: make backup FILE=backup-1.db" >&2; exit 2; }; $(LOAD_ENV) && cargo run --release --locked -q -- backup $(FILE)

dev: ## run locally with debug logs, rebuilding on every start
	@$(LOAD_ENV) && LOG_LEVEL=$${LOG_LEVEL:-DEBUG} cargo run --locked

down: ## stop and remove the container; the data volume stays
	$(DOCKER) rm -f $(IMAGE)

delete-data: ## DELETES the data volume and every message in it (the container must be down)
	$(DOCKER) volume rm $(IMAGE)-data

backup-docker: ## a checked copy of the container's database, written to /data and copied to the host: make backup-docker FILE=backup-1.db
	@test -n "$(FILE)" || { echo "usage: make backup-docker FILE=backup-1.db" >&2; exit 2; }; $(DOCKER) exec $(IMAGE) /webhook-api backup /data/$(notdir $(FILE)) && $(DOCKER) cp $(IMAGE):/data/$(notdir $(FILE)) $(FILE)

logs: ## follow the container's logs (JSON lines only: make logs | jq -c .)
	@$(DOCKER) logs -f $(IMAGE)

test-docker: ## every test, fault injection included, inside the builder image (no root, no promtool there)
	$(DOCKER) build --target build -t $(IMAGE):build . && $(DOCKER) run --rm -e SKIP_TESTS=promtool,tmpfs $(IMAGE):build cargo test --locked --features fault-injection
