//! Rule files as ops write them: TOML → raw, unchecked rules that remember where each id,
//! term and pattern stands (`toml::Spanned`), so errors found later still name `file:line`.
//! `parse(path)` wraps `parse_str(text, path)` so tests feed strings.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::RuleError;

/// One pack file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPack {
    /// `[pack]`: id and script language.
    pub pack: RawHeader,
    /// `[detectors]`: built-in detectors switched on for this pack.
    #[serde(default)]
    pub detectors: RawDetectors,
    /// `[[keywords]]`: scored keyword groups.
    #[serde(default)]
    pub keywords: Vec<RawKeywords>,
    /// `[[context]]`: purchase, question, negation and order-reference terms.
    #[serde(default)]
    pub context: Vec<RawContext>,
    /// `[[terms]]`: named term lists for boolean rules; they score nothing alone.
    #[serde(default)]
    pub terms: Vec<RawTerms>,
    /// `[[regex]]`: scored regular expressions over the normalized text.
    #[serde(default)]
    pub regex: Vec<RawRegex>,
    /// `[[rule]]`: boolean rules over other groups.
    #[serde(default)]
    pub rule: Vec<RawRule>,
    /// `[[allow]]`: phrases that must never fire.
    #[serde(default)]
    pub allow: Vec<RawTerms>,
    /// `[[script]]`: what to say, per topic (or class) and action.
    #[serde(default)]
    pub script: Vec<RawScript>,
    /// `[[example]]`: cases the pack must classify as stated (unit tests for rules).
    #[serde(default)]
    pub example: Vec<RawExample>,
    /// `[model]`: when the learned model may raise or drop an alert, in this pack's language.
    #[serde(default)]
    pub model: Option<Spanned<RawModel>>,
}

/// `[model]`: thresholds on the model's probabilities, per language (one table per language).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Raise a complaint the rules missed when P(complaint) reaches this.
    #[serde(default)]
    pub raise_complaint: Option<Spanned<f64>>,
    /// Raise an attack the rules missed when P(attack) reaches this.
    #[serde(default)]
    pub raise_attack: Option<Spanned<f64>>,
    /// A rule verdict scoring below this is weak...
    #[serde(default)]
    pub weak: Option<Spanned<f64>>,
    /// ...and is dropped when P(neutral) reaches this.
    #[serde(default)]
    pub veto: Option<Spanned<f64>>,
}

/// `[pack]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    /// Unique across the rules directory.
    pub id: Spanned<String>,
    /// Language of the pack's scripts: `zh` or `en`.
    pub lang: Spanned<String>,
    /// Free text for ops.
    #[serde(default)]
    pub description: Option<String>,
}

/// Fields shared by scored groups.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeywords {
    /// Group id, unique across the rules directory.
    pub id: Spanned<String>,
    /// `complaint` or `attack`.
    pub class: Spanned<String>,
    /// A topic of that class.
    pub topic: Spanned<String>,
    /// Added to the topic's score when the group fires (0..=1).
    pub weight: Spanned<f64>,
    /// Literal terms; a trailing `*` on a Latin term also matches longer words (`crack*`).
    pub terms: Vec<Spanned<String>>,
    /// The term itself says the writer has bought the item (`没收到`, `my order`).
    #[serde(default)]
    pub implies_purchase: bool,
    /// A negation just before a term cancels it. Default: true for complaints, false for attacks.
    #[serde(default)]
    pub negatable: Option<bool>,
    /// With purchase context, count as this `class/topic` instead (`complaint/authenticity`).
    #[serde(default)]
    pub with_purchase: Option<Spanned<String>>,
}

/// `[[context]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContext {
    /// Group id.
    pub id: Spanned<String>,
    /// `purchase`, `question`, `negation`, `order_ref` or `rhetorical`.
    pub role: Spanned<String>,
    /// Literal terms.
    pub terms: Vec<Spanned<String>>,
    /// For `negation` and `order_ref`: how many chars may stand between the term and what it
    /// modifies.
    #[serde(default)]
    pub window: Option<u32>,
}

/// `[[terms]]` and `[[allow]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTerms {
    /// Group id.
    pub id: Spanned<String>,
    /// Literal terms.
    pub terms: Vec<Spanned<String>>,
}

/// `[[regex]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegex {
    /// Group id.
    pub id: Spanned<String>,
    /// `complaint` or `attack`.
    pub class: Spanned<String>,
    /// A topic of that class.
    pub topic: Spanned<String>,
    /// Added to the topic's score (0..=1).
    pub weight: Spanned<f64>,
    /// A Rust regex over the normalized text (lower case, simplified, no punctuation).
    pub pattern: Spanned<String>,
    /// As for keywords.
    #[serde(default)]
    pub implies_purchase: bool,
}

/// `[[rule]]`: fires when every `all` group fired, at least one `any` group fired (if any are
/// listed), and no `none` group fired.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Rule id.
    pub id: Spanned<String>,
    /// `complaint` or `attack`.
    pub class: Spanned<String>,
    /// A topic of that class.
    pub topic: Spanned<String>,
    /// Added to the topic's score (0..=1).
    pub weight: Spanned<f64>,
    /// Group ids that must all have fired.
    #[serde(default)]
    pub all: Vec<Spanned<String>>,
    /// Group ids of which one must have fired.
    #[serde(default)]
    pub any: Vec<Spanned<String>>,
    /// Group ids none of which may have fired.
    #[serde(default)]
    pub none: Vec<Spanned<String>>,
    /// As for keywords.
    #[serde(default)]
    pub implies_purchase: bool,
}

/// `[detectors]`: each present table switches a detector on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetectors {
    /// Runs of digits (WeChat/QQ/phone numbers), unless an `order_ref` term stands before.
    pub phone: Option<RawDetector>,
    /// URLs and bare domains.
    pub url: Option<RawDetector>,
    /// `@handle` mentions.
    pub mention: Option<RawDetector>,
}

/// One detector's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetector {
    /// Added to the topic's score (0..=1).
    pub weight: Spanned<f64>,
    /// Attack topic it counts for; default `diversion`.
    #[serde(default)]
    pub topic: Option<Spanned<String>>,
    /// `phone` only: the shortest digit run that counts (default 7).
    #[serde(default)]
    pub min_digits: Option<u32>,
}

/// `[[script]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScript {
    /// A topic, or `complaint`/`attack` for the class-wide fallback.
    pub topic: Spanned<String>,
    /// The action this script goes with.
    pub action: Spanned<String>,
    /// The text, with `{user}` and `{product}` placeholders.
    pub text: Spanned<String>,
}

/// `[[example]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExample {
    /// A comment.
    pub text: Spanned<String>,
    /// Its expected class.
    pub class: Spanned<String>,
    /// Its expected topic, if it matters.
    #[serde(default)]
    pub topic: Option<Spanned<String>>,
}

/// A parsed file and the text it came from (to turn spans into line numbers).
#[derive(Debug)]
pub struct PackFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file text.
    pub source: String,
    /// The parsed pack.
    pub pack: RawPack,
}

impl PackFile {
    /// The 1-based line of a byte offset in this file.
    pub fn line(&self, offset: usize) -> usize {
        line_of(&self.source, offset)
    }
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Reads and parses one pack file.
pub fn parse(path: &Path) -> Result<PackFile, RuleError> {
    let source = std::fs::read_to_string(path).map_err(|e| RuleError {
        path: path.to_path_buf(),
        line: 0,
        id: None,
        message: format!("cannot read: {e}"),
    })?;
    parse_str(source, path)
}

/// Parses pack text; `path` only names it in errors.
pub fn parse_str(source: String, path: &Path) -> Result<PackFile, RuleError> {
    match toml::from_str::<RawPack>(&source) {
        Ok(pack) => Ok(PackFile {
            path: path.to_path_buf(),
            source,
            pack,
        }),
        Err(e) => {
            let line = e.span().map(|s| line_of(&source, s.start)).unwrap_or(0);
            Err(RuleError {
                path: path.to_path_buf(),
                line,
                id: None,
                message: e.message().trim().to_string(),
            })
        }
    }
}
