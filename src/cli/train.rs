//! `liveguard train`: reads labelled JSONL files (and the floor's feedback), trains the model,
//! prints cross-validated precision, recall and F1 per class, language and file, suggests
//! thresholds, and writes the model file atomically (the daemon hot-reloads it).

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use crate::model::Model;
use crate::rules::{ModelCfg, RuleSet};
use crate::store::feedback::FloorLabel;
use crate::train::{self, CrossValidation, Labelled, Line, Oof, Options, Scores};

/// Errors shown at most this many at a time (the rest are counted).
const MAX_SHOWN_ERRORS: usize = 20;

/// Why training could not start.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Lines that are not valid training items (`file:line: message`).
    #[error("{count} bad training line(s):\n{shown}")]
    Lines {
        /// How many.
        count: usize,
        /// The first few, one per line.
        shown: String,
    },
    /// A `--weight` that is not `PATH=W` with W in (0, 100].
    #[error("--weight {0:?}: expected PATH=W with W a number in (0, 100]")]
    Weight(String),
    /// Nothing to train on.
    #[error("no training items in the given files")]
    Empty,
}

/// Every `*.jsonl` file under each input (files are taken as given), sorted per directory.
pub fn training_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, TrainError> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            let mut stack = vec![input.clone()];
            while let Some(d) = stack.pop() {
                let entries = std::fs::read_dir(&d).map_err(|source| TrainError::Read {
                    path: d.clone(),
                    source,
                })?;
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "jsonl") {
                        found.push(p);
                    }
                }
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

/// Reads labelled lines from `reader` (origin `origin`), appending items and `name:line:`
/// errors.
pub fn read_lines(
    reader: impl BufRead,
    name: &str,
    origin: usize,
    items: &mut Vec<Labelled>,
    errors: &mut Vec<String>,
) {
    for (n, line) in reader.split(b'\n').enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                errors.push(format!("{name}:{}: {e}", n + 1));
                break;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = std::str::from_utf8(&line)
            .map_err(|_| "not valid UTF-8".to_string())
            .and_then(|s| serde_json::from_str::<Line>(s).map_err(|e| plain_json_error(&e)))
            .and_then(|l| l.into_labelled(origin));
        match parsed {
            Ok(it) => items.push(it),
            Err(e) => errors.push(format!("{name}:{}: {e}", n + 1)),
        }
    }
}

/// serde's message without its internals (`expected struct Line`).
fn plain_json_error(e: &serde_json::Error) -> String {
    if e.is_data() {
        let msg = e.to_string();
        let msg = msg.split(" at line").next().unwrap_or(&msg);
        format!("not a training line ({msg}); expected {{\"text\", \"label\", \"topic\"?}}")
    } else {
        "not valid JSON (one object per line)".into()
    }
}

/// The rule packs' `[[example]]`s as training items: they state what ops want, so the model
/// learns them too (and a retrain cannot make them fail).
pub fn examples_of(rules: &RuleSet) -> (String, Vec<Labelled>) {
    let items = rules
        .examples
        .iter()
        .map(|e| Labelled {
            text: e.text.clone(),
            label: e.class,
            topic: e.topic,
            weight: 1.0,
            origin: 0,
        })
        .collect();
    ("[[example]]s of the rule packs".to_string(), items)
}

/// Parses `PATH=W` (a `--weight` flag).
pub fn parse_weight(text: &str) -> Result<(PathBuf, f32), TrainError> {
    let bad = || TrainError::Weight(text.to_string());
    let (path, w) = text.rsplit_once('=').ok_or_else(bad)?;
    let w: f32 = w.trim().parse().map_err(|_| bad())?;
    if !(w.is_finite() && w > 0.0 && w <= 100.0) || path.is_empty() {
        return Err(bad());
    }
    Ok((PathBuf::from(path), w))
}

/// The floor's decisions as training items, each weighing `weight`.
pub fn feedback_items(name: &str, labels: &[FloorLabel], weight: f32) -> (String, Vec<Labelled>) {
    let items = labels
        .iter()
        .map(|l| Labelled {
            text: l.text.clone(),
            label: l.label,
            topic: l.topic,
            weight,
            origin: 0,
        })
        .collect();
    (format!("floor decisions in {name}"), items)
}

/// Reads every file; `extra` items (the floor's feedback) come first so they win over older
/// data on the same text.
pub fn load_items(
    files: &[PathBuf],
    weights: &[(PathBuf, f32)],
    extra: Vec<(String, Vec<Labelled>)>,
) -> Result<(Vec<Labelled>, Vec<String>), TrainError> {
    let mut items = Vec::new();
    let mut names = Vec::new();
    for (name, mut fb) in extra {
        let origin = names.len();
        for it in &mut fb {
            it.origin = origin;
        }
        items.extend(fb);
        names.push(name);
    }
    let mut errors = Vec::new();
    for path in files {
        let f = std::fs::File::open(path).map_err(|source| TrainError::Read {
            path: path.clone(),
            source,
        })?;
        let name = path.display().to_string();
        let from = items.len();
        read_lines(io::BufReader::new(f), &name, names.len(), &mut items, &mut errors);
        let factor: f32 = weights
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix))
            .map(|(_, w)| w)
            .product();
        for it in &mut items[from..] {
            it.weight *= factor;
        }
        names.push(name);
    }
    if !errors.is_empty() {
        let count = errors.len();
        errors.truncate(MAX_SHOWN_ERRORS);
        return Err(TrainError::Lines {
            count,
            shown: errors.join("\n"),
        });
    }
    if items.is_empty() {
        return Err(TrainError::Empty);
    }
    Ok((items, names))
}

/// Trains, reports to `out`, and returns the model.
pub fn run(
    rules: &RuleSet,
    items: Vec<Labelled>,
    names: &[String],
    opts: &Options,
    out: &mut dyn Write,
) -> io::Result<Model> {
    let read = items.len();
    let (items, conflicts) = train::dedupe(items);
    let mut per_file = vec![0usize; names.len()];
    for it in &items {
        per_file[it.origin] += 1;
    }
    let files: Vec<(String, usize)> = names.iter().cloned().zip(per_file.iter().copied()).collect();
    writeln!(
        out,
        "training on {} items ({} repeats dropped, {} of them with another label)",
        items.len(),
        read - items.len(),
        conflicts
    )?;
    for (name, n) in &files {
        writeln!(out, "  {n:>6}  {name}")?;
    }
    let trained = train::train(rules, &items, &files, opts);
    if let Some(cv) = &trained.cv {
        report(rules, cv, names, opts, out)?;
    }
    Ok(trained.model)
}

fn row(out: &mut dyn Write, name: &str, s: &Scores) -> io::Result<()> {
    let c = &s.classes;
    writeln!(
        out,
        "  {name:<28} {:>5}  {:.3}   {:.3}/{:.3}     {:.3}/{:.3}    {:.3}/{:.3}",
        s.n, s.macro_f1, c[0].p, c[0].r, c[1].p, c[1].r, c[2].p, c[2].r
    )
}

fn header(out: &mut dyn Write, title: &str) -> io::Result<()> {
    writeln!(out, "{title}")?;
    writeln!(
        out,
        "  {:<28} {:>5}  macroF1 complaint P/R   attack P/R     neutral P/R",
        "", "n"
    )
}

fn report(
    rules: &RuleSet,
    cv: &CrossValidation,
    names: &[String],
    opts: &Options,
    out: &mut dyn Write,
) -> io::Result<()> {
    let cfg = |o: &Oof| rules.model_cfg(o.lang);
    let rules_only = |o: &Oof| o.rules.0;
    let model_only = |o: &Oof| o.probs.best();
    let both = |o: &Oof| o.decided(&cfg(o));
    header(
        out,
        &format!(
            "\n{}-fold cross-validation (each item scored by a model that never saw it), thresholds from the rule packs:",
            opts.folds
        ),
    )?;
    let all = |_: &Oof| true;
    row(out, "rules", &cv.score(all, rules_only))?;
    row(out, "model alone", &cv.score(all, model_only))?;
    row(out, "rules + model", &cv.score(all, both))?;
    for lang in train::langs(cv) {
        let l = move |o: &Oof| o.lang == lang;
        row(
            out,
            &format!("{}: rules", lang.as_str()),
            &cv.score(l, rules_only),
        )?;
        row(
            out,
            &format!("{}: rules + model", lang.as_str()),
            &cv.score(l, both),
        )?;
    }
    header(out, "\nby file (rules → rules + model):")?;
    for (origin, name) in names.iter().enumerate() {
        let o = move |x: &Oof| x.origin == origin;
        let r = cv.score(o, rules_only);
        if r.n == 0 {
            continue;
        }
        let short = Path::new(name)
            .file_name()
            .map_or(name.clone(), |f| f.to_string_lossy().into_owned());
        row(out, &format!("{short}: rules"), &r)?;
        row(out, &format!("{short}: model alone"), &cv.score(o, model_only))?;
        row(out, &format!("{short}: rules + model"), &cv.score(o, both))?;
    }
    writeln!(
        out,
        "\nthreshold sweep (macro-F1 of rules + model per language; * = best with attack precision >= 0.85):"
    )?;
    for lang in train::langs(cv) {
        let base = rules.model_cfg(lang);
        let mut best: Option<(f32, ModelCfg)> = None;
        let grid = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];
        for rc in grid {
            for ra in grid {
                for weak in [0.5, 0.6, 0.7, 0.8, 0.9] {
                    for veto in [0.5, 0.6, 0.7, 0.8, 0.9] {
                        let c = ModelCfg {
                            raise_complaint: rc,
                            raise_attack: ra,
                            weak,
                            veto,
                        };
                        let s = cv.score(move |o| o.lang == lang, |o| o.decided(&c));
                        if s.classes[1].p >= 0.85 && best.is_none_or(|(b, _)| s.macro_f1 > b + 1e-4) {
                            best = Some((s.macro_f1, c));
                        }
                    }
                }
            }
        }
        let now = cv.score(move |o| o.lang == lang, |o| o.decided(&base)).macro_f1;
        match best {
            Some((f, c)) => writeln!(
                out,
                "  {}: now {now:.3} with {}; * {f:.3} with {}",
                lang.as_str(),
                cfg_text(&base),
                cfg_text(&c)
            )?,
            None => writeln!(
                out,
                "  {}: now {now:.3}; no setting keeps attack precision >= 0.85",
                lang.as_str()
            )?,
        }
    }
    Ok(())
}

fn cfg_text(c: &ModelCfg) -> String {
    format!(
        "raise_complaint = {}, raise_attack = {}, weak = {}, veto = {}",
        c.raise_complaint, c.raise_attack, c.weak, c.veto
    )
}

/// Writes the model next to `path` and renames it into place, so a watcher never reads half a
/// file.
pub fn write_model(model: &Model, path: &Path) -> io::Result<usize> {
    let bytes = model.to_bytes();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("lgm.tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(bytes.len())
}
