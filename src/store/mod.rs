//! Key-value stores. `store.memory` is [`MemoryStore`], `store.redis`
//! [`RedisStore`].

mod memory;
mod redis;

pub use memory::{MemoryStore, MemoryStoreConfig};
pub use redis::{RedisError, RedisStore, RedisStoreConfig};
