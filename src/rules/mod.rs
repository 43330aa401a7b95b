//! Stage 3, rules: the TOML rule packs ops edit (`rules/**/*.toml`, or the copy built into
//! the binary, see [`source`]) become one immutable [`RuleSet`]. [`file`] parses what was written, keeping line numbers; [`compile`] checks it
//! all (every error, not just the first) and builds the automata.

pub mod compile;
pub mod file;
pub mod source;

use std::fmt;
use std::path::{Path, PathBuf};

pub use compile::{Example, Group, GroupKind, ModelCfg, Role, RuleSet};
pub use source::{RuleFile, RuleSource};

/// One problem in a rule file, printed as `path:line: rule-id: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line; 0 when the whole file is at fault.
    pub line: usize,
    /// The rule or group id, when one is known.
    pub id: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(id) = &self.id {
            write!(f, ": {id}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a rules directory; a rule set is built only when there are none.
#[derive(Debug, thiserror::Error)]
#[error("{} error(s) in rule files:\n{}", .0.len(), render(.0))]
pub struct RuleErrors(pub Vec<RuleError>);

fn render(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads and compiles every pack (`*.toml`) of `source`, with the model (`*.lgm`) beside
/// them if there is one.
pub fn load(source: &RuleSource) -> Result<RuleSet, RuleErrors> {
    let files = source.files().map_err(|e| RuleErrors(vec![e]))?;
    let mut set = load_files(&files, source)?;
    let models: Vec<&RuleFile> = files.iter().filter(|f| f.has_ext(MODEL_EXTENSION)).collect();
    attach_model(&mut set, &models).map_err(|e| RuleErrors(vec![e]))?;
    Ok(set)
}

/// Loads and compiles the packs of `source` only, leaving any model aside (training replaces
/// the model, so it must not depend on it).
pub fn load_packs(source: &RuleSource) -> Result<RuleSet, RuleErrors> {
    let files = source.files().map_err(|e| RuleErrors(vec![e]))?;
    load_files(&files, source)
}

/// Model files end in `.lgm`.
pub const MODEL_EXTENSION: &str = "lgm";

/// Checks the model file among `files` (at most one) and attaches it to `set`.
pub fn attach_model(set: &mut RuleSet, files: &[&RuleFile]) -> Result<(), RuleError> {
    match files {
        [] => Ok(()),
        [f] => {
            let m = crate::model::Model::from_bytes(&f.bytes).map_err(|e| RuleError {
                path: f.path.clone(),
                line: 0,
                id: None,
                message: format!("bad model file: {e}"),
            })?;
            set.model = Some(std::sync::Arc::new(m));
            Ok(())
        }
        [first, second, ..] => Err(RuleError {
            path: second.path.clone(),
            line: 0,
            id: None,
            message: format!(
                "a second model file (the first is {}); keep one",
                first.path.display()
            ),
        }),
    }
}

/// Compiles the packs among `files` (read from `source`, which only names it in errors).
pub fn load_files(files: &[RuleFile], source: &RuleSource) -> Result<RuleSet, RuleErrors> {
    let mut packs = Vec::new();
    let mut errors = Vec::new();
    for f in files.iter().filter(|f| f.has_ext("toml")) {
        match std::str::from_utf8(&f.bytes) {
            Ok(text) => match file::parse_str(text.to_string(), &f.path) {
                Ok(p) => packs.push(p),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(RuleError {
                path: f.path.clone(),
                line: 0,
                id: None,
                message: format!("not UTF-8 text: {e}"),
            }),
        }
    }
    if packs.is_empty() && errors.is_empty() {
        return Err(RuleErrors(vec![RuleError {
            path: source
                .dir()
                .map_or_else(|| PathBuf::from(source::BUILT_IN_PREFIX), Path::to_path_buf),
            line: 0,
            id: None,
            message: "no rule packs (*.toml) found".into(),
        }]));
    }
    match compile::compile(&packs) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(RuleErrors(errors)),
        Err(RuleErrors(more)) => {
            errors.extend(more);
            Err(RuleErrors(errors))
        }
    }
}

/// Loads and compiles every pack under `dir`.
pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleErrors> {
    load(&RuleSource::Dir(dir.to_path_buf()))
}
