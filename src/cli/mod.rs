//! The commands behind `liveguard classify` and `liveguard rules check|explain`, written over
//! readers and writers so tests drive them with strings; `main.rs` only parses flags.

pub mod report;
pub mod train;

use std::io::{self, BufRead, BufReader, Read, Write};

use serde::Serialize;

use crate::classify::{self, Evidence, HitState, Input, Scratch};
use crate::rules::RuleSet;
use crate::taxonomy::{Action, Class, Source, Topic};

/// How `classify` reads stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One JSON object per line with at least `text` (and optional `id`, `user`, `room`, `product`).
    Jsonl,
    /// One comment per line, as plain text.
    Text,
}

/// One input comment, read from a JSON object by [`InLine::from_json`].
#[derive(Debug)]
struct InLine {
    id: Option<serde_json::Value>,
    text: String,
    user: Option<String>,
    room: Option<String>,
    product: Option<String>,
}

impl InLine {
    /// Reads a comment from one JSON line, or says in plain words why it is not one (the id,
    /// if there was one, comes back with the error so the output line can carry it).
    fn from_json(raw: &str) -> Result<Self, (Option<serde_json::Value>, String)> {
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| (None, format!("not JSON (at column {})", e.column())))?;
        let serde_json::Value::Object(mut o) = v else {
            let what = match v {
                serde_json::Value::Array(_) => "a list",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "true or false",
                _ => "null",
            };
            return Err((
                None,
                format!("expected an object like {{\"text\": \"...\"}}, got {what}"),
            ));
        };
        let id = o.remove("id");
        // Names and ids arrive as numbers from some platforms: take either.
        let mut field = |k: &str| -> Result<Option<String>, String> {
            match o.remove(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s)),
                Some(serde_json::Value::Number(n)) if k != "text" => Ok(Some(n.to_string())),
                Some(_) => Err(format!("\"{k}\" must be a string")),
            }
        };
        let parsed = (|| {
            let text = field("text")?.ok_or_else(|| "no \"text\" field".to_string())?;
            Ok::<_, String>((text, field("user")?, field("room")?, field("product")?))
        })();
        match parsed {
            Ok((text, user, room, product)) => Ok(Self {
                id,
                text,
                user,
                room,
                product,
            }),
            Err(e) => Err((id, e)),
        }
    }
}

#[derive(Debug, Serialize)]
struct OutLine<'a> {
    id: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    label: Class,
    topic: Option<Topic>,
    score: f32,
    action: Action,
    evidence: &'a [Evidence],
    script: Option<&'a str>,
    source: Source,
}

#[derive(Debug, Serialize)]
struct ErrLine<'a> {
    id: Option<serde_json::Value>,
    line: usize,
    error: &'a str,
}

/// What a `classify` run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClassifyStats {
    /// Comments classified.
    pub classified: usize,
    /// Input lines that could not be read as a comment.
    pub failed: usize,
}

/// Reads comments from `input`, writes one JSON verdict per comment to `out`, and for each
/// malformed line an error object to `out` and a message to `err`; processing continues.
/// Output is flushed whenever the input has nothing buffered, so a live pipe sees verdicts
/// at once while a file is written in large blocks.
pub fn classify_stream<R: Read>(
    rules: &RuleSet,
    input: R,
    out: &mut impl Write,
    err: &mut impl Write,
    format: InputFormat,
) -> io::Result<ClassifyStats> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut scratch = Scratch::new();
    let mut stats = ClassifyStats::default();
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        n += 1;
        // A line that is not UTF-8 is one bad line, not the end of the run.
        let raw = match std::str::from_utf8(&line) {
            Ok(s) => s.trim_end_matches(['\n', '\r']),
            Err(e) => {
                stats.failed += 1;
                let msg = format!(
                    "line {n}: not a comment: not UTF-8 text (invalid byte at column {})",
                    e.valid_up_to() + 1
                );
                bad_line(out, err, None, n, &msg)?;
                continue;
            }
        };
        if raw.trim().is_empty() {
            continue;
        }
        match format {
            InputFormat::Text => {
                let input = Input {
                    text: raw,
                    ..Input::default()
                };
                write_verdict(rules, &mut scratch, out, serde_json::Value::from(n), None, input)?;
                stats.classified += 1;
            }
            InputFormat::Jsonl => match InLine::from_json(raw) {
                Ok(c) => {
                    let id = c.id.clone().unwrap_or_else(|| serde_json::Value::from(n));
                    let input = Input {
                        text: &c.text,
                        user: c.user.as_deref(),
                        product: c.product.as_deref(),
                    };
                    write_verdict(rules, &mut scratch, out, id, Some(&c), input)?;
                    stats.classified += 1;
                }
                Err((id, e)) => {
                    stats.failed += 1;
                    bad_line(out, err, id, n, &format!("line {n}: not a comment: {e}"))?;
                }
            },
        }
        if reader.buffer().is_empty() {
            out.flush()?;
        }
    }
    out.flush()?;
    Ok(stats)
}

/// Reports a line that is not a comment: an error object on `out`, the message on `err`.
fn bad_line(
    out: &mut impl Write,
    err: &mut impl Write,
    id: Option<serde_json::Value>,
    line: usize,
    msg: &str,
) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &ErrLine { id, line, error: msg })?;
    out.write_all(b"\n")?;
    writeln!(err, "liveguard classify: {msg}")
}

fn write_verdict(
    rules: &RuleSet,
    scratch: &mut Scratch,
    out: &mut impl Write,
    id: serde_json::Value,
    line: Option<&InLine>,
    input: Input<'_>,
) -> io::Result<()> {
    let v = classify::classify(rules, scratch, input);
    let o = OutLine {
        id,
        room: line.and_then(|l| l.room.as_deref()),
        user: line.and_then(|l| l.user.as_deref()),
        label: v.class,
        topic: v.topic,
        score: (v.score * 1000.0).round() / 1000.0,
        action: v.action,
        evidence: &v.evidence,
        script: v.script.as_deref(),
        source: v.source,
    };
    serde_json::to_writer(&mut *out, &o)?;
    out.write_all(b"\n")
}

pub use crate::classify::{check_examples, ExampleFailure};

/// Writes what `liveguard rules explain` shows: the normalized text, every hit (with its
/// original span and whether it was negated or allow-listed), and the verdict.
pub fn explain(rules: &RuleSet, text: &str, out: &mut impl Write) -> io::Result<()> {
    let (normalized, hits, verdict) = classify::explain(rules, text);
    writeln!(out, "text:       {text}")?;
    writeln!(out, "normalized: {normalized}")?;
    if hits.is_empty() {
        writeln!(out, "fired:      nothing")?;
    } else {
        writeln!(out, "fired:")?;
    }
    for (id, h) in &hits {
        let g = &rules.groups()[h.group as usize];
        let what = match (g.kind, g.topic) {
            (crate::rules::GroupKind::Context(r), _) => format!("context {r:?}").to_lowercase(),
            (_, Some(t)) => format!("{}/{} +{:.2}", t.class().as_str(), t.as_str(), g.weight),
            (k, None) => format!("{k:?}").to_lowercase(),
        };
        let state = match h.state {
            HitState::Active => "",
            HitState::Negated => "  (negated)",
            HitState::Allowed => "  (allow-listed)",
        };
        if h.nstart == u32::MAX && h.start == 0 && h.end == 0 {
            writeln!(out, "  {id:<28} {what:<28} (boolean rule held){state}")?;
        } else {
            let span = text.get(h.start as usize..h.end as usize).unwrap_or("");
            writeln!(
                out,
                "  {id:<28} {what:<28} {}..{} {span:?}{state}",
                h.start, h.end
            )?;
        }
    }
    match classify::explain_model(rules, text) {
        Some(m) => {
            let p = m.probs;
            writeln!(
                out,
                "model:      P(complaint) {:.3}  P(attack) {:.3}  P(neutral) {:.3}",
                p.complaint, p.attack, p.neutral
            )?;
            writeln!(
                out,
                "  strongest features (push towards {} rather than neutral):",
                m.towards.as_str()
            )?;
            for (name, w) in &m.top {
                writeln!(out, "  {w:>+7.3}  {name}")?;
            }
        }
        None => writeln!(out, "model:      none loaded")?,
    }
    writeln!(
        out,
        "verdict:    {}",
        serde_json::to_string(&verdict).unwrap_or_default()
    )?;
    Ok(())
}
