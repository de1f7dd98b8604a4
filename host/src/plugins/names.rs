//! Which file names are plugins.

/// Longest plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// Why `name` is not a valid plugin name; `None` if it is.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Some(format!(
            "plugin names are 1 to {MAX_NAME_LEN} characters long"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Some(format!(
            "plugin name {name:?} may only contain a-z, 0-9, '-' and '_'"
        ));
    }
    None
}

/// The plugin a directory entry stands for: `NAME.wasm` with a valid name.
/// Dotfiles, editor temp files and other extensions are not plugins.
pub fn plugin_of_file(file_name: &str) -> Option<&str> {
    let name = file_name.strip_suffix(".wasm")?;
    name_problem(name).is_none().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_wasm_files_are_plugins() {
        assert_eq!(plugin_of_file("orders.wasm"), Some("orders"));
        assert_eq!(plugin_of_file(".orders.wasm.swp"), None);
        assert_eq!(plugin_of_file("orders.wasm~"), None);
        assert_eq!(plugin_of_file(".orders.wasm"), None);
        assert_eq!(plugin_of_file("Orders.wasm"), None);
    }

    #[test]
    fn path_tricks_are_not_names() {
        assert!(name_problem("../etc").is_some());
        assert!(name_problem("a/b").is_some());
        assert!(name_problem(&"a".repeat(65)).is_some());
        assert!(name_problem("account-balance_2").is_none());
    }
}
