//! A projection project on disk, as `prism new` makes it and `prism build`,
//! `prism test` and `prism dev` find it: its folder, its language (from the
//! manifest it holds) and the plugin name (the manifest's package name).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use prism::plugins::PluginName;

/// The languages a projection can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the `prism-guest` crate; built by cargo for wasm32-wasip2.
    Rust,
    /// Python, with `prism_projection`; built by componentize-py.
    Python,
    /// JavaScript, with `@prism/projection`; built by componentize-js.
    Js,
}

impl Lang {
    /// The manifest that marks a project of this language.
    pub fn manifest(self) -> &'static str {
        match self {
            Lang::Rust => "Cargo.toml",
            Lang::Python => "pyproject.toml",
            Lang::Js => "package.json",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        })
    }
}

/// A projection's source folder.
#[derive(Debug, Clone)]
pub struct Project {
    /// Absolute, so that messages and child processes do not depend on the
    /// working directory.
    pub dir: PathBuf,
    pub lang: Lang,
    /// The package name in the manifest: the plugin's name on a server.
    pub name: String,
}

impl Project {
    /// The project in `dir`; its language from `lang`, else from the one
    /// manifest the folder holds.
    pub fn open(dir: &Path, lang: Option<Lang>) -> anyhow::Result<Project> {
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("no project folder at {}", dir.display()))?;
        let lang = match lang {
            Some(lang) => lang,
            None => {
                let found: Vec<Lang> = [Lang::Rust, Lang::Python, Lang::Js]
                    .into_iter()
                    .filter(|lang| dir.join(lang.manifest()).is_file())
                    .collect();
                match found[..] {
                    [lang] => lang,
                    [] => bail!(
                        "{} holds no Cargo.toml, pyproject.toml or package.json: \
                         is it a projection made with `prism new`?",
                        dir.display()
                    ),
                    _ => bail!(
                        "{} holds more than one of Cargo.toml, pyproject.toml and package.json: \
                         say which language with --lang",
                        dir.display()
                    ),
                }
            }
        };
        let manifest = dir.join(lang.manifest());
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let name = package_name(lang, &text)
            .with_context(|| format!("reading the package name in {}", manifest.display()))?;
        Ok(Project { dir, lang, name })
    }

    /// The plugin name to install under: `plugin` if given, else the
    /// package name, which must then be a valid plugin name.
    pub fn plugin_name(&self, plugin: Option<&str>) -> anyhow::Result<PluginName> {
        let name = plugin.unwrap_or(&self.name);
        PluginName::parse(name).map_err(|error| {
            anyhow::anyhow!(
                "{error}{}",
                if plugin.is_none() {
                    " (it is the package name; name the plugin with --plugin)"
                } else {
                    ""
                }
            )
        })
    }

    /// Where `prism build` puts what it stages and builds (not the Rust
    /// component, which is wherever cargo puts it).
    pub fn target_dir(&self) -> PathBuf {
        self.dir.join("target")
    }
}

/// The package name a manifest declares.
fn package_name(lang: Lang, manifest: &str) -> anyhow::Result<String> {
    let name = match lang {
        Lang::Rust => toml::from_str::<toml::Table>(manifest)?
            .get("package")
            .and_then(|package| package.get("name"))
            .and_then(|name| name.as_str())
            .map(str::to_owned),
        Lang::Python => toml::from_str::<toml::Table>(manifest)?
            .get("project")
            .and_then(|project| project.get("name"))
            .and_then(|name| name.as_str())
            .map(str::to_owned),
        Lang::Js => serde_json::from_str::<serde_json::Value>(manifest)?["name"]
            .as_str()
            .map(str::to_owned),
    };
    name.context("it has none")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_name_is_read_from_each_manifest() {
        let rust = "[package]\nname = \"orders\"\nversion = \"0.1.0\"\n";
        let python = "[project]\nname = \"orders-py\"\n";
        let js = r#"{"name": "orders-js", "type": "module"}"#;
        assert_eq!(package_name(Lang::Rust, rust).unwrap(), "orders");
        assert_eq!(package_name(Lang::Python, python).unwrap(), "orders-py");
        assert_eq!(package_name(Lang::Js, js).unwrap(), "orders-js");
        assert!(package_name(Lang::Js, "{}").is_err());
    }

    #[test]
    fn a_folder_with_one_manifest_is_a_project_of_its_language() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), r#"{"name": "bank"}"#).unwrap();
        let project = Project::open(dir.path(), None).unwrap();
        assert_eq!(project.lang, Lang::Js);
        assert_eq!(project.plugin_name(None).unwrap().as_str(), "bank");
        assert_eq!(
            project.plugin_name(Some("other")).unwrap().as_str(),
            "other"
        );

        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"bank\"\n",
        )
        .unwrap();
        assert!(Project::open(dir.path(), None).is_err());
        assert_eq!(
            Project::open(dir.path(), Some(Lang::Rust)).unwrap().lang,
            Lang::Rust
        );
    }
}
