//! `fs.directory`: a directory on disk that other entries (static files) read.
//!
//! [`Directory::resolve`] maps a request path to a file strictly inside the
//! directory: `..`, absolute parts, backslashes and NUL are refused, and the
//! canonical result must still lie under the canonical root (no escape
//! through symlinks either).

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// The `fs.directory` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The directory, relative to the manifest's directory.
    pub directory: String,
    /// Create the directory when missing (default false: a missing one is a boot error).
    #[serde(default)]
    pub auto_init: bool,
}

/// A booted `fs.directory`.
#[derive(Debug)]
pub struct Directory {
    root: PathBuf,
}

impl Directory {
    /// Opens the directory; it must exist (or be created with `auto_init`).
    pub fn open(path: &Path, config: &DirectoryConfig) -> Result<Self, String> {
        if config.auto_init {
            std::fs::create_dir_all(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        }
        let root = path
            .canonicalize()
            .map_err(|e| format!("directory {} is not usable: {e}", path.display()))?;
        if !root.is_dir() {
            return Err(format!("{} is not a directory", path.display()));
        }
        Ok(Directory { root })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file for a relative request path, if it exists inside the root.
    pub fn resolve(&self, rel: &str) -> Option<PathBuf> {
        if rel.contains('\0') || rel.contains('\\') {
            return None;
        }
        let mut path = self.root.clone();
        for part in Path::new(rel.trim_start_matches('/')).components() {
            match part {
                Component::Normal(p) => path.push(p),
                Component::CurDir => {}
                _ => return None,
            }
        }
        let real = path.canonicalize().ok()?;
        (real.starts_with(&self.root) && real.is_file()).then_some(real)
    }
}
