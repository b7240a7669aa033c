//! Filesystems. `fs.directory` lives in [`directory`].

mod directory;

pub use directory::{Directory, DirectoryConfig};
