/work/main/target-old/release/deps/deranged-947549fda9ed91ab.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/deranged-0.5.9/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/deranged-0.5.9/src/unsafe_wrapper.rs

/work/main/target-old/release/deps/libderanged-947549fda9ed91ab.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/deranged-0.5.9/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/deranged-0.5.9/src/unsafe_wrapper.rs

/work/main/target-old/release/deps/libderanged-947549fda9ed91ab.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/deranged-0.5.9/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/deranged-0.5.9/src/unsafe_wrapper.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/deranged-0.5.9/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/deranged-0.5.9/src/unsafe_wrapper.rs:
