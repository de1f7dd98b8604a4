//! The pinned toolchains that turn a projection into a component, found or
//! installed once into a cache folder: `PRISM_TOOLS`, else
//! `$XDG_CACHE_HOME/prism/tools`, else `~/.cache/prism/tools`.
//!
//! - Python: componentize-py at the version the Python SDK pins, in a venv.
//! - JavaScript: componentize-js and jco as the SDK's lockfile pins them
//!   (`npm ci`), beside the SDK's `build.mjs`.
//! - Rust: cargo and rustup's `wasm32-wasip2` target, added if missing.
//!
//! A toolchain the Prism checkout this binary was built from has already
//! installed at the same pins (`scripts/setup-other-toolchains.sh`) is used
//! instead of installing a second copy. Installs hold a lock on the cache
//! folder, so builds running at once install once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::sdk;

/// The toolchain cache.
pub struct Tools {
    root: PathBuf,
}

/// Held while the cache is changed; released when dropped.
struct CacheLock {
    _file: std::fs::File,
}

/// The Rust target components are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

impl Tools {
    /// The cache named by the environment.
    pub fn from_env() -> anyhow::Result<Tools> {
        let root = if let Some(dir) = std::env::var_os("PRISM_TOOLS").filter(|d| !d.is_empty()) {
            PathBuf::from(dir)
        } else if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(cache).join("prism").join("tools")
        } else if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            PathBuf::from(home)
                .join(".cache")
                .join("prism")
                .join("tools")
        } else {
            bail!("set PRISM_TOOLS (or HOME) to say where build tools may be installed")
        };
        Ok(Tools { root })
    }

    fn lock(&self) -> anyhow::Result<CacheLock> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(".lock"))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .context("locking the toolchain cache")?;
        Ok(CacheLock { _file: file })
    }

    /// The `componentize-py` executable at the pinned version.
    pub fn componentize_py(&self) -> anyhow::Result<PathBuf> {
        let version = sdk::componentize_py_version();
        let venv = self.root.join(format!("componentize-py-{version}"));
        let exe = venv.join("bin").join("componentize-py");
        let from_checkout = sdk::built_from().join("target/tools/py/bin/componentize-py");
        for candidate in [&exe, &from_checkout] {
            if reports_version(candidate, version) {
                return Ok(candidate.clone());
            }
        }
        let _lock = self.lock()?;
        if reports_version(&exe, version) {
            return Ok(exe);
        }
        need("python3", "Python 3.10 or newer, with its venv module")?;
        eprintln!(
            "prism: installing componentize-py {version} into {} (once)",
            venv.display()
        );
        if venv.exists() {
            std::fs::remove_dir_all(&venv)?;
        }
        run_to_end(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )?;
        run_to_end(
            Command::new(venv.join("bin").join("python"))
                .args(["-m", "pip", "install", "--quiet"])
                .args(["--disable-pip-version-check", "--no-input"])
                .arg(format!("componentize-py=={version}")),
            "pip install componentize-py",
        )?;
        if !reports_version(&exe, version) {
            bail!(
                "{} does not answer as componentize-py {version}",
                exe.display()
            );
        }
        Ok(exe)
    }

    /// The SDK's `build.mjs`, next to componentize-js at the pinned versions.
    pub fn componentize_js(&self) -> anyhow::Result<PathBuf> {
        let lock_file = sdk::JS_BUILD
            .iter()
            .find(|file| file.path == "package-lock.json")
            .expect("the lockfile is embedded");
        let lock_hash = hex::encode(Sha256::digest(lock_file.contents.as_bytes()));
        let dir = self
            .root
            .join(format!("componentize-js-{}", &lock_hash[..12]));
        let _lock = self.lock()?;
        // The SDK and build script may change without the lockfile changing.
        sdk::install(&dir, sdk::JS_SDK)?;
        sdk::install(&dir, sdk::JS_BUILD)?;
        let build_mjs = dir.join("build.mjs");
        let modules = dir.join("node_modules");
        let installed = |modules: &Path| {
            std::fs::read_to_string(modules.join(".prism-lock-sha256"))
                .is_ok_and(|stamp| stamp.trim() == lock_hash)
        };
        if installed(&modules) {
            return Ok(build_mjs);
        }
        if std::fs::symlink_metadata(&modules).is_ok_and(|meta| meta.is_symlink()) {
            std::fs::remove_file(&modules)?;
        }
        let from_checkout = sdk::built_from().join("guest-sdk/js/node_modules");
        if installed(&from_checkout) {
            std::os::unix::fs::symlink(&from_checkout, &modules)
                .with_context(|| format!("linking {}", modules.display()))?;
            return Ok(build_mjs);
        }
        need("node", "Node.js 20 or newer")?;
        need("npm", "npm, which comes with Node.js")?;
        eprintln!(
            "prism: installing componentize-js into {} (npm ci, once)",
            dir.display()
        );
        run_to_end(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--include=dev"])
                .arg("--loglevel=error")
                .current_dir(&dir),
            "npm ci",
        )?;
        std::fs::write(modules.join(".prism-lock-sha256"), format!("{lock_hash}\n"))?;
        Ok(build_mjs)
    }
}

/// Adds the `wasm32-wasip2` target through rustup if it is missing. Without
/// rustup, cargo itself says what is missing when it builds.
pub fn rust_target() -> anyhow::Result<()> {
    let Ok(listed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    if !listed.status.success()
        || String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|line| line.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("prism: adding the {WASM_TARGET} target (rustup target add {WASM_TARGET})");
    run_to_end(
        Command::new("rustup").args(["target", "add", WASM_TARGET]),
        "rustup target add",
    )
}

/// Fails with what to install unless `program --version` runs.
pub fn need(program: &str, what: &str) -> anyhow::Result<()> {
    let runs = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if runs {
        Ok(())
    } else {
        bail!("{program} was not found on PATH: install {what}")
    }
}

fn reports_version(exe: &Path, version: &str) -> bool {
    Command::new(exe)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .ends_with(version)
        })
}

/// Runs an install step with its output shown; an error if it fails.
fn run_to_end(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
