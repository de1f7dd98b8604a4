//! `prism test`: a projection's unit tests, natively, with its language's own
//! runner and the SDK's in-memory harness: `cargo test`,
//! `python3 -m unittest`, `node --test`. No WebAssembly is involved.

use std::ffi::OsString;
use std::process::{Command, ExitStatus};

use anyhow::Context;

use super::project::{Lang, Project};
use super::sdk;
use super::toolchain;

/// Runs the tests of `project`, with `args` passed on to the runner, and
/// returns how the runner ended.
pub fn run(project: &Project, args: &[OsString]) -> anyhow::Result<ExitStatus> {
    let mut command = match project.lang {
        Lang::Rust => {
            toolchain::need("cargo", "Rust (https://rustup.rs)")?;
            let mut command = Command::new("cargo");
            command.arg("test");
            command
        }
        Lang::Python => {
            toolchain::need("python3", "Python 3.10 or newer")?;
            let sdk_dir = sdk::install_python(&project.dir)?;
            let mut path = OsString::from(sdk_dir);
            if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
                path.push(":");
                path.push(existing);
            }
            let mut command = Command::new("python3");
            command
                .args(["-m", "unittest"])
                .env("PYTHONPATH", path)
                // No bytecode caches among the sources.
                .env("PYTHONDONTWRITEBYTECODE", "1");
            command
        }
        Lang::Js => {
            toolchain::need("node", "Node.js 20 or newer")?;
            sdk::install_js(&project.dir)?;
            let mut command = Command::new("node");
            command.arg("--test");
            command
        }
    };
    command
        .args(args)
        .current_dir(&project.dir)
        .status()
        .with_context(|| format!("running the {} tests", project.lang))
}
