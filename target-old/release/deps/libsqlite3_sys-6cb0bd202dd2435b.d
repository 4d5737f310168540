/work/main/target-old/release/deps/libsqlite3_sys-6cb0bd202dd2435b.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libsqlite3-sys-0.40.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libsqlite3-sys-0.40.0/src/error.rs /work/main/target-old/release/build/libsqlite3-sys-cc45536385b032d2/out/bindgen.rs

/work/main/target-old/release/deps/liblibsqlite3_sys-6cb0bd202dd2435b.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libsqlite3-sys-0.40.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libsqlite3-sys-0.40.0/src/error.rs /work/main/target-old/release/build/libsqlite3-sys-cc45536385b032d2/out/bindgen.rs

/work/main/target-old/release/deps/liblibsqlite3_sys-6cb0bd202dd2435b.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libsqlite3-sys-0.40.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libsqlite3-sys-0.40.0/src/error.rs /work/main/target-old/release/build/libsqlite3-sys-cc45536385b032d2/out/bindgen.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libsqlite3-sys-0.40.0/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libsqlite3-sys-0.40.0/src/error.rs:
/work/main/target-old/release/build/libsqlite3-sys-cc45536385b032d2/out/bindgen.rs:

# env-dep:OUT_DIR=/work/main/target-old/release/build/libsqlite3-sys-cc45536385b032d2/out
