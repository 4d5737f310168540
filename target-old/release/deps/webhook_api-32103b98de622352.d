/work/main/target-old/release/deps/webhook_api-32103b98de622352.d: src/main.rs

/work/main/target-old/release/deps/webhook_api-32103b98de622352: src/main.rs

src/main.rs:

# env-dep:CARGO_PKG_VERSION=0.1.0
