//! Stage 3, rules: the TOML rule packs ops edit (`rules/**/*.toml`) become one immutable
//! [`RuleSet`]. [`file`] parses what was written, keeping line numbers; [`compile`] checks it
//! all (every error, not just the first) and builds the automata.

pub mod compile;
pub mod file;

use std::fmt;
use std::path::{Path, PathBuf};

pub use compile::{Example, Group, GroupKind, ModelCfg, Role, RuleSet};

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

/// Every `*.toml` file under `dir`, recursively, in a stable (sorted) order.
pub fn pack_paths(dir: &Path) -> Result<Vec<PathBuf>, RuleError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| RuleError {
            path: d.clone(),
            line: 0,
            id: None,
            message: format!("cannot read rules directory: {e}"),
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(RuleError {
            path: dir.to_path_buf(),
            line: 0,
            id: None,
            message: "no rule packs (*.toml) found".into(),
        });
    }
    Ok(out)
}

/// Loads and compiles every pack under `dir`, with the model (`*.lgm`) beside them if any.
pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleErrors> {
    let mut set = load_packs(dir)?;
    let mut models = Vec::new();
    for p in model_paths(dir) {
        match std::fs::read(&p) {
            Ok(bytes) => models.push((p, bytes)),
            Err(e) => {
                return Err(RuleErrors(vec![RuleError {
                    path: p,
                    line: 0,
                    id: None,
                    message: format!("cannot read model: {e}"),
                }]))
            }
        }
    }
    attach_model(&mut set, &models).map_err(|e| RuleErrors(vec![e]))?;
    Ok(set)
}

/// Loads and compiles the packs under `dir` only, leaving any model file aside (training
/// replaces the model, so it must not depend on it).
pub fn load_packs(dir: &Path) -> Result<RuleSet, RuleErrors> {
    let paths = pack_paths(dir).map_err(|e| RuleErrors(vec![e]))?;
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match file::parse(&p) {
            Ok(f) => files.push(f),
            Err(e) => errors.push(e),
        }
    }
    match compile::compile(&files) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(RuleErrors(errors)),
        Err(RuleErrors(more)) => {
            errors.extend(more);
            Err(RuleErrors(errors))
        }
    }
}

/// Every `*.lgm` model file under `dir`, sorted.
fn model_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == MODEL_EXTENSION) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Model files end in `.lgm`.
pub const MODEL_EXTENSION: &str = "lgm";

/// Checks the model file among `files` (at most one) and attaches it to `set`.
pub fn attach_model(set: &mut RuleSet, files: &[(PathBuf, Vec<u8>)]) -> Result<(), RuleError> {
    match files {
        [] => Ok(()),
        [(path, bytes)] => {
            let m = crate::model::Model::from_bytes(bytes).map_err(|e| RuleError {
                path: path.clone(),
                line: 0,
                id: None,
                message: format!("bad model file: {e}"),
            })?;
            set.model = Some(std::sync::Arc::new(m));
            Ok(())
        }
        [(first, _), (second, _), ..] => Err(RuleError {
            path: second.clone(),
            line: 0,
            id: None,
            message: format!("a second model file (the first is {}); keep one", first.display()),
        }),
    }
}
