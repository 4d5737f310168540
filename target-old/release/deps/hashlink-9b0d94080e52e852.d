/work/main/target-old/release/deps/hashlink-9b0d94080e52e852.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/linked_hash_map.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/linked_hash_set.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/lru_cache.rs

/work/main/target-old/release/deps/libhashlink-9b0d94080e52e852.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/linked_hash_map.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/linked_hash_set.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/lru_cache.rs

/work/main/target-old/release/deps/libhashlink-9b0d94080e52e852.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/linked_hash_map.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/linked_hash_set.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/lru_cache.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/linked_hash_map.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/linked_hash_set.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hashlink-0.12.2/src/lru_cache.rs:
