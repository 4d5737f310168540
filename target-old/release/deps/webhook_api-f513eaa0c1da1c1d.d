/work/main/target-old/release/deps/webhook_api-f513eaa0c1da1c1d.d: src/lib.rs src/config.rs src/erase.rs src/http.rs src/log.rs src/messages.rs src/metrics.rs src/router.rs src/server/mod.rs src/server/conn.rs src/server/lanes.rs src/server/poller.rs src/signature.rs src/store/mod.rs src/store/adopt.rs src/store/budget.rs src/store/commit.rs src/store/health.rs src/store/hours.rs src/store/plan.rs src/store/prune.rs src/store/schema.rs src/store/search.rs src/ts.rs src/webhook.rs src/whatsapp.rs src/wire.rs src/wire/limits.rs src/wire/response.rs src/openapi.json

/work/main/target-old/release/deps/libwebhook_api-f513eaa0c1da1c1d.rlib: src/lib.rs src/config.rs src/erase.rs src/http.rs src/log.rs src/messages.rs src/metrics.rs src/router.rs src/server/mod.rs src/server/conn.rs src/server/lanes.rs src/server/poller.rs src/signature.rs src/store/mod.rs src/store/adopt.rs src/store/budget.rs src/store/commit.rs src/store/health.rs src/store/hours.rs src/store/plan.rs src/store/prune.rs src/store/schema.rs src/store/search.rs src/ts.rs src/webhook.rs src/whatsapp.rs src/wire.rs src/wire/limits.rs src/wire/response.rs src/openapi.json

/work/main/target-old/release/deps/libwebhook_api-f513eaa0c1da1c1d.rmeta: src/lib.rs src/config.rs src/erase.rs src/http.rs src/log.rs src/messages.rs src/metrics.rs src/router.rs src/server/mod.rs src/server/conn.rs src/server/lanes.rs src/server/poller.rs src/signature.rs src/store/mod.rs src/store/adopt.rs src/store/budget.rs src/store/commit.rs src/store/health.rs src/store/hours.rs src/store/plan.rs src/store/prune.rs src/store/schema.rs src/store/search.rs src/ts.rs src/webhook.rs src/whatsapp.rs src/wire.rs src/wire/limits.rs src/wire/response.rs src/openapi.json

src/lib.rs:
src/config.rs:
src/erase.rs:
src/http.rs:
src/log.rs:
src/messages.rs:
src/metrics.rs:
src/router.rs:
src/server/mod.rs:
src/server/conn.rs:
src/server/lanes.rs:
src/server/poller.rs:
src/signature.rs:
src/store/mod.rs:
src/store/adopt.rs:
src/store/budget.rs:
src/store/commit.rs:
src/store/health.rs:
src/store/hours.rs:
src/store/plan.rs:
src/store/prune.rs:
src/store/schema.rs:
src/store/search.rs:
src/ts.rs:
src/webhook.rs:
src/whatsapp.rs:
src/wire.rs:
src/wire/limits.rs:
src/wire/response.rs:
src/openapi.json:

# env-dep:CARGO_PKG_VERSION=0.1.0
