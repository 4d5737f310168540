/work/main/target-old/release/deps/num_conv-a73259e451742bdc.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/num-conv-0.2.2/src/lib.rs

/work/main/target-old/release/deps/libnum_conv-a73259e451742bdc.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/num-conv-0.2.2/src/lib.rs

/work/main/target-old/release/deps/libnum_conv-a73259e451742bdc.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/num-conv-0.2.2/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/num-conv-0.2.2/src/lib.rs:
