/work/main/target-old/release/deps/fallible_iterator-86fbe87368378b8a.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/fallible-iterator-0.3.0/src/lib.rs

/work/main/target-old/release/deps/libfallible_iterator-86fbe87368378b8a.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/fallible-iterator-0.3.0/src/lib.rs

/work/main/target-old/release/deps/libfallible_iterator-86fbe87368378b8a.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/fallible-iterator-0.3.0/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/fallible-iterator-0.3.0/src/lib.rs:
