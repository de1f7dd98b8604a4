//! Plugin names and which files in the plugin directory are plugins:
//! `NAME.wasm` (a component) and `NAME.view.yaml` / `.view.json` (a view file).
//!
//! A name is parsed once into a [`PluginName`]; everything past the edge of
//! the server (HTTP paths, file names, the store) takes that type, so no
//! other module checks names again.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::declarative::Kind;

/// Longest plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// A valid plugin name: 1 to 64 of `a-z`, `0-9`, `-`, `_`. It is also a
/// safe file name and a safe part of a column-family name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PluginName(String);

/// Why a string is not a plugin name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

impl PluginName {
    pub fn parse(name: &str) -> Result<PluginName, NameError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(NameError(format!(
                "plugin names are 1 to {MAX_NAME_LEN} characters long"
            )));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(NameError(format!(
                "plugin name {name:?} may only contain a-z, 0-9, '-' and '_'"
            )));
        }
        Ok(PluginName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file that stands for this plugin in the plugin directory when
    /// its content is `bytes`: `NAME.wasm` for a component, `NAME.view.yaml`
    /// or `NAME.view.json` for a view file.
    pub fn file_name(&self, bytes: &[u8]) -> String {
        format!("{}.{}", self.0, Kind::extension(bytes))
    }

    /// Every file name that may stand for this plugin.
    pub fn file_names(&self) -> impl DoubleEndedIterator<Item = String> + '_ {
        EXTENSIONS
            .iter()
            .map(move |ext| format!("{}.{ext}", self.0))
    }

    /// Remove the files in `dir` that stand for this plugin, but `keep`.
    pub fn remove_files(&self, dir: &Path, keep: Option<&str>) -> std::io::Result<()> {
        for file in self.file_names() {
            if Some(file.as_str()) == keep {
                continue;
            }
            match std::fs::remove_file(dir.join(&file)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Make `bytes` this plugin's file in `dir`: written atomically under
    /// the name of their kind, a file of another kind for it removed.
    /// Blocking.
    pub fn install_file(&self, dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let file = self.file_name(bytes);
        let path = dir.join(&file);
        if std::fs::read(&path).is_ok_and(|b| b == bytes) {
            return self.remove_files(dir, Some(&file));
        }
        crate::storage::files::write_atomically(&path, bytes)?;
        self.remove_files(dir, Some(&file))
    }
}

/// The extensions of plugin files: components, then view files.
pub const EXTENSIONS: &[&str] = &["wasm", "view.yaml", "view.yml", "view.json"];

/// The file in `dir` that stands for plugin `name`, if any. When several
/// do (`orders.wasm` and a new `orders.view.yaml`, say), the one modified
/// last counts, so that dropping a file of another kind replaces the
/// plugin whether or not the old file is removed first.
pub fn file_of(dir: &Path, name: &PluginName) -> Option<PathBuf> {
    name.file_names()
        .filter_map(|f| {
            let path = dir.join(f);
            let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
            Some((modified, path))
        })
        // Ties go to the first extension listed.
        .rev()
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path)
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PluginName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PluginName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The plugin a directory entry stands for: `NAME.wasm`, `NAME.view.yaml`,
/// `NAME.view.yml` or `NAME.view.json` with a valid name. Dotfiles, editor
/// temp files and other extensions are not plugins.
pub fn plugin_of_file(file_name: &str) -> Option<PluginName> {
    EXTENSIONS.iter().find_map(|ext| {
        let stem = file_name.strip_suffix(ext)?.strip_suffix('.')?;
        PluginName::parse(stem).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(file: &str) -> Option<String> {
        plugin_of_file(file).map(|n| n.to_string())
    }

    #[test]
    fn only_clean_wasm_files_are_plugins() {
        assert_eq!(of("orders.wasm").as_deref(), Some("orders"));
        assert_eq!(of(".orders.wasm.swp"), None);
        assert_eq!(of("orders.wasm~"), None);
        assert_eq!(of(".orders.wasm"), None);
        assert_eq!(of("Orders.wasm"), None);
        assert_eq!(of("orders.view.yaml").as_deref(), Some("orders"));
        assert_eq!(of("orders.view.yml").as_deref(), Some("orders"));
        assert_eq!(of("orders.view.json").as_deref(), Some("orders"));
        assert_eq!(of("orders.yaml"), None);
        assert_eq!(of("orders.view.yaml.swp"), None);
        assert_eq!(of(".view.yaml"), None);
    }

    #[test]
    fn a_file_is_named_after_its_kind() {
        let name = PluginName::parse("orders").unwrap();
        assert_eq!(name.file_name(b"\0asm\x0d\0\x01\0"), "orders.wasm");
        assert_eq!(name.file_name(b"key: x\n"), "orders.view.yaml");
        assert_eq!(name.file_name(b"\n  {\"key\": 1}"), "orders.view.json");
    }

    #[test]
    fn path_tricks_are_not_names() {
        assert!(PluginName::parse("../etc").is_err());
        assert!(PluginName::parse("a/b").is_err());
        assert!(PluginName::parse("").is_err());
        assert!(PluginName::parse(&"a".repeat(65)).is_err());
        assert!(PluginName::parse("account-balance_2").is_ok());
    }

    #[test]
    fn names_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<PluginName>("\"ok-name\"").is_ok());
        assert!(serde_json::from_str::<PluginName>("\"Bad Name\"").is_err());
    }
}
