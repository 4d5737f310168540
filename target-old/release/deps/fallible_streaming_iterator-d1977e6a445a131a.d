/work/main/target-old/release/deps/fallible_streaming_iterator-d1977e6a445a131a.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/fallible-streaming-iterator-0.1.9/src/lib.rs

/work/main/target-old/release/deps/libfallible_streaming_iterator-d1977e6a445a131a.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/fallible-streaming-iterator-0.1.9/src/lib.rs

/work/main/target-old/release/deps/libfallible_streaming_iterator-d1977e6a445a131a.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/fallible-streaming-iterator-0.1.9/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/fallible-streaming-iterator-0.1.9/src/lib.rs:
