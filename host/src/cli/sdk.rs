//! The SDKs a projection is written against, as the `prism` binary carries
//! them: the Python and JavaScript SDKs and the WIT contract are embedded
//! (so a project anywhere on disk builds against exactly the contract of the
//! `prism` that builds it), and the Rust SDK is found as a crate on disk or
//! in git.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// One embedded file: its path below the folder it is written to.
pub struct File {
    pub path: &'static str,
    pub contents: &'static str,
}

macro_rules! embed {
    ($root:literal: $($path:literal),* $(,)?) => {
        &[$(File {
            path: $path,
            contents: include_str!(concat!("../../../", $root, "/", $path)),
        }),*]
    };
}

/// `prism_projection`, importable once its folder is on `PYTHONPATH`.
pub const PYTHON_SDK: &[File] = embed!("guest-sdk/python":
    "prism_projection/__init__.py",
    "prism_projection/_component.py",
    "prism_projection/_log.py",
    "prism_projection/_runtime.py",
    "prism_projection/testing.py",
    "pyproject.toml",
);

/// `@prism/projection`, as a package folder.
pub const JS_SDK: &[File] = embed!("guest-sdk/js":
    "package.json",
    "src/index.js",
    "src/testing.js",
    "src/component.js",
);

/// What builds a JavaScript component, beside [`JS_SDK`]: the build script
/// and the lockfile that pins componentize-js.
pub const JS_BUILD: &[File] = embed!("guest-sdk/js":
    "build.mjs",
    "package-lock.json",
);

/// The WIT package Python projections are built against:
/// `prism:projection@0.2.0`, the version their SDK implements (it cannot
/// emit events yet; 0.3.0 adds that).
pub const PYTHON_WIT: &[File] = embed!("wit/0.2.0": "projection.wit");

/// The WIT package JavaScript projections are built against: the current
/// one, whose `handle` takes its batch packed in one buffer (the SDK neither
/// emits events nor enqueues requests yet).
pub const JS_WIT: &[File] = embed!("wit": "projection.wit");

/// The componentize-py version the Python SDK pins (its `build` extra).
pub fn componentize_py_version() -> &'static str {
    let pyproject = PYTHON_SDK
        .iter()
        .find(|file| file.path == "pyproject.toml")
        .expect("pyproject.toml is embedded");
    pyproject
        .contents
        .split('"')
        .find_map(|part| part.strip_prefix("componentize-py=="))
        .expect("the Python SDK pins componentize-py")
}

/// Writes `files` below `dir`, each only if its contents differ, through a
/// temporary name, so a reader never sees half a file. Whether anything
/// was written.
pub fn install<'a>(dir: &Path, files: impl IntoIterator<Item = &'a File>) -> anyhow::Result<bool> {
    let mut changed = false;
    for file in files {
        let path = dir.join(file.path);
        if std::fs::read(&path).is_ok_and(|old| old == file.contents.as_bytes()) {
            continue;
        }
        let parent = path.parent().expect("a file has a folder");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let mut temp = tempfile::NamedTempFile::new_in(parent)?;
        temp.write_all(file.contents.as_bytes())?;
        // Readable like any source file (a temporary file starts private).
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        temp.persist(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        changed = true;
    }
    Ok(changed)
}

/// Where a project keeps the SDK `prism` installs into it (git-ignored).
pub fn project_sdk_dir(project_dir: &Path, lang: &str) -> PathBuf {
    project_dir.join(".prism").join("sdk").join(lang)
}

/// Installs the Python SDK into a project: `.prism/sdk/python`, the folder
/// `prism test` puts on `PYTHONPATH`.
pub fn install_python(project_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = project_sdk_dir(project_dir, "python");
    install(&dir, PYTHON_SDK)?;
    Ok(dir)
}

/// Installs the JavaScript SDK into a project: `.prism/sdk/js`, linked from
/// `node_modules/@prism/projection` as `npm install` links the project's
/// `file:` dependency on it, so Node and editors resolve the imports.
pub fn install_js(project_dir: &Path) -> anyhow::Result<()> {
    let dir = project_sdk_dir(project_dir, "js");
    install(&dir, JS_SDK)?;
    let scope = project_dir.join("node_modules").join("@prism");
    let link = scope.join("projection");
    let target = Path::new("../../.prism/sdk/js");
    if std::fs::read_link(&link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    std::fs::create_dir_all(&scope).with_context(|| format!("creating {}", scope.display()))?;
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&link)?,
        Ok(_) => std::fs::remove_file(&link)?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, &link)
        .with_context(|| format!("linking {}", link.display()))?;
    Ok(())
}

/// Where a new Rust projection's `prism-guest` dependency points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RustSdk {
    /// The `guest-sdk` folder of a Prism checkout.
    Path(PathBuf),
    /// A Prism repository in git; cargo finds the crate inside it.
    Git(String),
}

impl RustSdk {
    /// The dependency's value in Cargo.toml.
    pub fn dependency(&self) -> String {
        let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
        match self {
            RustSdk::Path(path) => format!("{{ path = {} }}", quoted(&path.to_string_lossy())),
            RustSdk::Git(url) => format!("{{ git = {} }}", quoted(url)),
        }
    }

    /// The SDK given by `--sdk`/`PRISM_SDK` (a checkout, its `guest-sdk`
    /// folder, or a git URL), else the checkout this binary was built from,
    /// if it is still there.
    pub fn resolve(given: Option<&str>) -> anyhow::Result<RustSdk> {
        if let Some(given) = given {
            if given.contains("://") || given.starts_with("git@") {
                return Ok(RustSdk::Git(given.to_owned()));
            }
            return Self::at(Path::new(given))
                .with_context(|| format!("--sdk / PRISM_SDK {given}"));
        }
        let checkout = built_from();
        Self::at(&checkout).with_context(|| {
            format!(
                "this prism was built from {}, which no longer holds the Rust SDK: \
                 point --sdk (or PRISM_SDK) at a Prism checkout or its git URL",
                checkout.display()
            )
        })
    }

    fn at(path: &Path) -> anyhow::Result<RustSdk> {
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("{} does not exist", path.display()))?;
        for candidate in [path.join("guest-sdk"), path.clone()] {
            let manifest = candidate.join("Cargo.toml");
            if std::fs::read_to_string(&manifest)
                .is_ok_and(|text| text.contains("name = \"prism-guest\""))
            {
                return Ok(RustSdk::Path(candidate));
            }
        }
        bail!(
            "{} is neither a Prism checkout nor its guest-sdk folder",
            path.display()
        )
    }
}

/// The Prism checkout this binary was built from.
pub fn built_from() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the checkout")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every file of `dir` (below `root`) with one of `extensions`.
    fn files_on_disk(root: &Path, dir: &str, extensions: &[&str]) -> BTreeSet<String> {
        std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|e| extensions.contains(&e.to_str().unwrap()))
            })
            .map(|path| format!("{dir}/{}", path.file_name().unwrap().to_str().unwrap()))
            .collect()
    }

    fn embedded(files: &[File], dir: &str) -> BTreeSet<String> {
        files
            .iter()
            .filter(|file| file.path.starts_with(&format!("{dir}/")))
            .map(|file| file.path.to_owned())
            .collect()
    }

    #[test]
    fn every_sdk_source_file_is_embedded() {
        let root = built_from();
        assert_eq!(
            embedded(PYTHON_SDK, "prism_projection"),
            files_on_disk(&root.join("guest-sdk/python"), "prism_projection", &["py"])
        );
        assert_eq!(
            embedded(JS_SDK, "src"),
            files_on_disk(&root.join("guest-sdk/js"), "src", &["js", "mjs"])
        );
    }

    #[test]
    fn the_pinned_componentize_py_is_read_from_the_python_sdk() {
        let version = componentize_py_version();
        assert!(
            version.split('.').all(|n| n.parse::<u32>().is_ok()),
            "{version}"
        );
    }

    #[test]
    fn installing_writes_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(install(dir.path(), JS_WIT).unwrap());
        assert!(!install(dir.path(), JS_WIT).unwrap());
        std::fs::write(dir.path().join("projection.wit"), "changed").unwrap();
        assert!(install(dir.path(), JS_WIT).unwrap());
    }

    #[test]
    fn the_rust_sdk_is_a_checkout_its_folder_or_a_git_url() {
        let root = built_from();
        let sdk = RustSdk::Path(root.join("guest-sdk").canonicalize().unwrap());
        assert_eq!(RustSdk::resolve(None).unwrap(), sdk);
        assert_eq!(RustSdk::resolve(Some(root.to_str().unwrap())).unwrap(), sdk);
        assert_eq!(
            RustSdk::resolve(Some(root.join("guest-sdk").to_str().unwrap())).unwrap(),
            sdk
        );
        let git = RustSdk::resolve(Some("https://example.com/prism.git")).unwrap();
        assert_eq!(
            git.dependency(),
            r#"{ git = "https://example.com/prism.git" }"#
        );
        assert!(RustSdk::resolve(Some(root.join("wit").to_str().unwrap())).is_err());
    }
}
