//! `prism new`: a projection project anywhere on disk, from the templates in
//! `host/templates/` (carried in the binary). The skeleton builds and passes
//! its own unit test as it is; for Python and JavaScript the SDK is
//! installed into the project from the binary's own copy.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use prism::plugins::PluginName;

use super::project::Lang;
use super::sdk::{self, RustSdk};

/// One template file: where it goes in the project, and its text with
/// `{{name}}`, `{{type_name}}`, `{{sdk_dependency}}` and `{{sdk_origin}}`.
struct Template {
    path: &'static str,
    text: &'static str,
}

macro_rules! templates {
    ($lang:literal: $($source:literal => $path:literal),* $(,)?) => {
        &[$(Template {
            path: $path,
            text: include_str!(concat!("../../templates/", $lang, "/", $source)),
        }),*]
    };
}

const RUST: &[Template] = templates!("rust":
    // Not named Cargo.toml: cargo reads every manifest of a repository
    // that a git dependency points into, and this one is not valid TOML.
    "Cargo.toml.template" => "Cargo.toml",
    "src/lib.rs" => "src/lib.rs",
    "README.md" => "README.md",
    "gitignore" => ".gitignore",
);

const PYTHON: &[Template] = templates!("python":
    "pyproject.toml" => "pyproject.toml",
    "app.py" => "app.py",
    "test_app.py" => "test_app.py",
    "README.md" => "README.md",
    "gitignore" => ".gitignore",
);

const JS: &[Template] = templates!("js":
    "package.json" => "package.json",
    "projection.js" => "projection.js",
    "projection.test.js" => "projection.test.js",
    "README.md" => "README.md",
    "gitignore" => ".gitignore",
);

/// Creates the project `name` in `dir` (default `./NAME`) and returns its
/// folder. `sdk` is `--sdk`/`PRISM_SDK`, for Rust.
pub fn create(
    name: &str,
    lang: Lang,
    dir: Option<&Path>,
    sdk: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let name = PluginName::parse(name)?;
    let name = name.as_str();
    if lang == Lang::Rust && !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("a Rust projection's name starts with a letter (it is the crate's name too)");
    }
    if sdk.is_some() && lang != Lang::Rust {
        bail!(
            "--sdk is for Rust projections: the {lang} SDK comes with the prism binary \
             (PRISM_SDK is ignored for {lang})"
        );
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    let (templates, sdk_dependency, sdk_origin) = match lang {
        Lang::Rust => {
            let sdk = RustSdk::resolve(sdk)?;
            let origin = match &sdk {
                RustSdk::Path(path) => format!("the path dependency on {}", path.display()),
                RustSdk::Git(url) => format!("the git dependency on {url}"),
            };
            (RUST, sdk.dependency(), origin)
        }
        Lang::Python => (PYTHON, String::new(), String::new()),
        Lang::Js => (JS, String::new(), String::new()),
    };
    let type_name = type_name(name);
    for template in templates {
        let path = dir.join(template.path);
        std::fs::create_dir_all(path.parent().expect("a file has a folder"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let text = template
            .text
            .replace("{{name}}", name)
            .replace("{{type_name}}", &type_name)
            .replace("{{sdk_dependency}}", &sdk_dependency)
            .replace("{{sdk_origin}}", &sdk_origin);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    match lang {
        Lang::Rust => {}
        Lang::Python => {
            sdk::install_python(&dir)?;
        }
        Lang::Js => sdk::install_js(&dir)?,
    }
    Ok(dir)
}

/// `order-summary` as a type name: `OrderSummary`.
fn type_name(name: &str) -> String {
    let camel: String = name
        .split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().expect("parts are not empty");
            first.to_ascii_uppercase().to_string() + chars.as_str()
        })
        .collect();
    if camel.starts_with(|c: char| c.is_ascii_alphabetic()) {
        camel
    } else {
        format!("Projection{camel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case_and_start_with_a_letter() {
        assert_eq!(type_name("order-summary"), "OrderSummary");
        assert_eq!(type_name("bank_2"), "Bank2");
        assert_eq!(type_name("7-eleven"), "Projection7Eleven");
    }

    #[test]
    fn a_project_is_not_made_over_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let error = create("bank", Lang::Python, Some(dir.path()), None).unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
    }

    #[test]
    fn every_template_placeholder_is_filled() {
        let root = tempfile::tempdir().unwrap();
        for (lang, dir) in [(Lang::Rust, "r"), (Lang::Python, "p"), (Lang::Js, "j")] {
            let made = create("bank-2", lang, Some(&root.path().join(dir)), None).unwrap();
            for template in match lang {
                Lang::Rust => RUST,
                Lang::Python => PYTHON,
                Lang::Js => JS,
            } {
                let text = std::fs::read_to_string(made.join(template.path)).unwrap();
                assert!(!text.contains("{{"), "{}: {text}", template.path);
            }
            let readme = std::fs::read_to_string(made.join("README.md")).unwrap();
            assert_eq!(readme.lines().count(), 3, "{readme}");
        }
        assert!(
            root.path()
                .join("j/node_modules/@prism/projection/src/index.js")
                .is_file()
        );
        assert!(
            root.path()
                .join("p/.prism/sdk/python/prism_projection/testing.py")
                .is_file()
        );
    }
}
