//! Filesystems. `fs.directory` is [`Directory`].

mod directory;

pub use directory::{Directory, DirectoryConfig};
