//! Key-value stores. `store.memory` lives in [`memory`].

mod memory;

pub use memory::{MemoryStore, MemoryStoreConfig};
