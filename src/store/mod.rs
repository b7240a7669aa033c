//! Key-value stores. `store.memory` lives in [`memory`], `store.redis` in
//! [`redis`].

mod memory;
mod redis;

pub use memory::{MemoryStore, MemoryStoreConfig};
pub use redis::{RedisError, RedisStore, RedisStoreConfig};
