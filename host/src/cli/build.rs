//! `prism build`: a projection's sources into a WebAssembly component, with
//! the toolchain of its language.
//!
//! - Rust: `cargo build --release --target wasm32-wasip2` (the project's
//!   release profile is the size-tuned one Prism builds its own plugins
//!   with); the component is where cargo puts it.
//! - Python: the project's modules (tests left out) and the SDK staged in
//!   `target/prism-build/`, then componentize-py on the module `app`.
//! - JavaScript: the SDK's `build.mjs` (componentize-js) on `projection.js`.
//!
//! Python and JavaScript components land in `target/NAME.wasm`, moved into
//! place whole. A toolchain's own output is shown as it is (or, for
//! `prism dev`, kept and handed back with the failure).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::project::{Lang, Project};
use super::sdk;
use super::toolchain::{self, Tools, WASM_TARGET};

/// What to do with a toolchain's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Let it through to the terminal as it comes.
    Show,
    /// Keep it, to show only if the build fails.
    Keep,
}

/// A finished build.
#[derive(Debug)]
pub struct Built {
    pub wasm: PathBuf,
    pub bytes: u64,
    pub took: Duration,
}

/// A toolchain that ran and failed: a mistake in the sources, usually.
#[derive(Debug)]
pub struct ToolFailed {
    pub tool: &'static str,
    pub status: ExitStatus,
    /// What it printed, when kept ([`Output::Keep`]).
    pub output: String,
}

impl fmt::Display for ToolFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed ({})", self.tool, self.status)?;
        if !self.output.trim().is_empty() {
            write!(f, ":\n{}", self.output.trim_end())?;
        }
        Ok(())
    }
}

impl std::error::Error for ToolFailed {}

/// Builds `project` into a component.
pub fn build(project: &Project, tools: &Tools, output: Output) -> anyhow::Result<Built> {
    let started = Instant::now();
    let wasm = match project.lang {
        Lang::Rust => build_rust(project, output)?,
        Lang::Python => build_python(project, tools, output)?,
        Lang::Js => build_js(project, tools, output)?,
    };
    let bytes = std::fs::metadata(&wasm)
        .with_context(|| format!("the build made no {}", wasm.display()))?
        .len();
    Ok(Built {
        wasm,
        bytes,
        took: started.elapsed(),
    })
}

fn build_rust(project: &Project, output: Output) -> anyhow::Result<PathBuf> {
    toolchain::need("cargo", "Rust (https://rustup.rs)")?;
    toolchain::rust_target()?;
    run(
        Command::new("cargo")
            .args(["build", "--release", "--target", WASM_TARGET])
            .current_dir(&project.dir),
        "cargo build",
        output,
    )?;
    let metadata = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(&project.dir)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !metadata.status.success() {
        bail!("cargo metadata failed ({})", metadata.status);
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata.stdout).context("reading cargo metadata")?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("cargo metadata names no target directory")?;
    let library = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| package["name"] == project.name.as_str())
        .flat_map(|package| package["targets"].as_array().into_iter().flatten())
        .find(|target| {
            target["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "cdylib"))
        })
        .and_then(|target| target["name"].as_str())
        .with_context(|| {
            format!(
                "{} has no cdylib library: a component is built from one \
                 ([lib] crate-type = [\"cdylib\", \"rlib\"])",
                project.name
            )
        })?;
    Ok(Path::new(target_dir)
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", library.replace('-', "_"))))
}

/// Folders that hold no sources of the projection.
pub fn is_ignored_dir(name: &str) -> bool {
    name.starts_with('.') || matches!(name, "target" | "node_modules" | "__pycache__")
}

fn build_python(project: &Project, tools: &Tools, output: Output) -> anyhow::Result<PathBuf> {
    if !project.dir.join("app.py").is_file() {
        bail!(
            "{} has no app.py: componentize-py builds the module `app`, \
             which holds the class marked @prism.export",
            project.dir.display()
        );
    }
    let componentize_py = tools.componentize_py()?;
    let work = project.target_dir().join("prism-build");
    let stage = work.join("stage");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    copy_python_sources(&project.dir, &stage)?;
    let sdk_package: Vec<&sdk::File> = sdk::PYTHON_SDK
        .iter()
        .filter(|file| file.path.starts_with("prism_projection/"))
        .collect();
    sdk::install(&stage, sdk_package)?;
    let wit = work.join("wit");
    sdk::install(&wit, sdk::PYTHON_WIT)?;
    let built = work.join(format!("{}.wasm", project.name));
    run(
        Command::new(&componentize_py)
            .arg("--quiet")
            .arg("-d")
            .arg(&wit)
            .args(["-w", "projector", "componentize", "app", "-p"])
            .arg(&stage)
            .arg("-o")
            .arg(&built)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(&project.dir),
        "componentize-py",
        output,
    )?;
    put_in_place(&built, project)
}

/// Copies the `.py` files below `from`, tests and tool folders left out,
/// keeping their layout.
fn copy_python_sources(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if !is_ignored_dir(&name) && name != "tests" {
                copy_python_sources(&path, &to.join(&*name))?;
            }
        } else if name.ends_with(".py")
            && !name.starts_with("test_")
            && !name.ends_with("_test.py")
            && name != "conftest.py"
        {
            std::fs::copy(&path, to.join(&*name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

fn build_js(project: &Project, tools: &Tools, output: Output) -> anyhow::Result<PathBuf> {
    let projection = project.dir.join("projection.js");
    if !projection.is_file() {
        bail!(
            "{} has no projection.js: the module whose default export is \
             defineProjection({{...}})",
            project.dir.display()
        );
    }
    toolchain::need("node", "Node.js 20 or newer")?;
    let build_mjs = tools.componentize_js()?;
    let work = project.target_dir().join("prism-build");
    let wit = work.join("wit");
    sdk::install(&wit, sdk::JS_WIT)?;
    let built = work.join(format!("{}.wasm", project.name));
    run(
        Command::new("node")
            .arg(&build_mjs)
            .arg(&projection)
            .arg(&built)
            .arg("--wit")
            .arg(&wit)
            .arg("--quiet")
            .current_dir(&project.dir),
        "componentize-js",
        output,
    )?;
    put_in_place(&built, project)
}

/// Moves a finished component to `target/NAME.wasm` in one step, so that
/// nothing watching the folder ever sees half of one.
fn put_in_place(built: &Path, project: &Project) -> anyhow::Result<PathBuf> {
    let wasm = project.target_dir().join(format!("{}.wasm", project.name));
    std::fs::rename(built, &wasm)
        .with_context(|| format!("moving the component to {}", wasm.display()))?;
    Ok(wasm)
}

/// Runs one toolchain step; a [`ToolFailed`] if it fails.
fn run(command: &mut Command, tool: &'static str, output: Output) -> anyhow::Result<()> {
    let (status, kept) = match output {
        Output::Show => (
            command
                .status()
                .with_context(|| format!("starting {tool}"))?,
            String::new(),
        ),
        Output::Keep => {
            let out = command
                .output()
                .with_context(|| format!("starting {tool}"))?;
            let mut kept = String::from_utf8_lossy(&out.stdout).into_owned();
            kept.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status, kept)
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(ToolFailed {
            tool,
            status,
            output: kept,
        }
        .into())
    }
}

/// A size as people read it: `239.0 KiB`, `11.6 MiB`.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let bytes_f = bytes as f64;
    if bytes_f < KIB {
        format!("{bytes} bytes")
    } else if bytes_f < KIB * KIB {
        format!("{:.1} KiB", bytes_f / KIB)
    } else {
        format!("{:.1} MiB", bytes_f / KIB / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_tests_and_tool_folders_are_not_staged() {
        let project = tempfile::tempdir().unwrap();
        let p = project.path();
        for file in [
            "app.py",
            "model/orders.py",
            "test_app.py",
            "app_test.py",
            "tests/test_more.py",
            ".prism/sdk/python/prism_projection/__init__.py",
            "target/prism-build/stage/app.py",
            "notes.txt",
        ] {
            std::fs::create_dir_all(p.join(file).parent().unwrap()).unwrap();
            std::fs::write(p.join(file), "").unwrap();
        }
        let stage = tempfile::tempdir().unwrap();
        copy_python_sources(p, stage.path()).unwrap();
        let mut staged: Vec<String> = walk(stage.path())
            .iter()
            .map(|f| f.strip_prefix(stage.path()).unwrap().display().to_string())
            .collect();
        staged.sort();
        assert_eq!(staged, ["app.py", "model/orders.py"]);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(244_786), "239.0 KiB");
        assert_eq!(size(12_131_981), "11.6 MiB");
    }
}
