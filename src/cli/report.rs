//! `liveguard report`: the insights of [`crate::store::insights`] rendered for a person (an
//! aligned table), a spreadsheet (CSV, one number per row) or a program (the `/api/stats`
//! JSON, byte for byte). Written over `Write` so tests render strings.

use std::io::{self, Write};

use crate::store::insights::{Stats, Timing};

/// How `report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned sections for reading.
    Table,
    /// `section,key,value`, one number per row (RFC 4180).
    Csv,
    /// Exactly what `GET /api/stats` answers.
    Json,
}

/// Writes `stats` to `out` in `format`.
pub fn render(stats: &Stats, format: ReportFormat, out: &mut dyn Write) -> io::Result<()> {
    match format {
        ReportFormat::Table => render_table(stats, out),
        ReportFormat::Csv => render_csv(stats, out),
        ReportFormat::Json => render_json(stats, out),
    }
}

/// The `/api/stats` JSON, on one line.
pub fn render_json(stats: &Stats, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, stats)?;
    writeln!(out)
}

/// A duration for people: the largest unit and the next one if non-zero (`7m`, `1h 30m`,
/// `2d 3h`, `6m 40s`, `850ms`).
pub fn human_ms(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    for (i, &(size, name)) in UNITS.iter().enumerate() {
        if ms >= size {
            let mut s = format!("{}{name}", ms / size);
            if let Some(&(next, next_name)) = UNITS.get(i + 1) {
                let rest = ms % size / next;
                if rest > 0 {
                    s.push_str(&format!(" {rest}{next_name}"));
                }
            }
            return s;
        }
    }
    format!("{ms}ms")
}

/// `YYYY-MM-DD HH:MM` in UTC for ms since the epoch.
pub fn utc_minute(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}

/// Days since 1970-01-01 to (year, month, day): H. Hinnant's `civil_from_days`, for days ≥ 0.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Terminal columns `s` takes: East Asian wide characters (Han, kana, Hangul, full-width
/// forms) take two, so product names in Chinese still line up.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// Rows of cells printed as aligned columns (two spaces apart) after `indent`; cells that
/// look like numbers are right-aligned.
fn grid(out: &mut dyn Write, indent: &str, rows: &[Vec<String>]) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[c].saturating_sub(width(cell)));
            if c > 0 {
                line.push_str("  ");
            }
            let numeric = !cell.is_empty() && cell.chars().all(|ch| ch.is_ascii_digit() || ch == '.');
            if numeric {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `420000 ms (7m)`, or `-` when there is no value.
fn duration_cell(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| format!("{ms} ms ({})", human_ms(ms)))
}

/// Rows `label key n` for a list, the label only on the first.
fn list_rows(rows: &mut Vec<Vec<String>>, label: &str, list: &[crate::store::insights::KeyCount]) {
    for (i, kc) in list.iter().enumerate() {
        let l = if i == 0 { label } else { "" };
        rows.push(vec![l.to_string(), kc.key.clone(), kc.n.to_string()]);
    }
}

fn timing_row(name: &str, t: &Timing) -> Vec<String> {
    vec![
        name.to_string(),
        t.n.to_string(),
        duration_cell(t.median_ms),
        duration_cell(t.p90_ms),
        t.breaches.to_string(),
    ]
}

/// Readable aligned sections: complaints, attacks, tickets, rules.
pub fn render_table(s: &Stats, out: &mut dyn Write) -> io::Result<()> {
    let span = s.until_ms.saturating_sub(s.since_ms);
    writeln!(
        out,
        "liveguard report: {} to {} UTC ({}), {}",
        utc_minute(s.since_ms),
        utc_minute(s.until_ms),
        human_ms(span),
        s.room
            .as_deref()
            .map_or_else(|| "all rooms".to_string(), |r| format!("room {r}"))
    )?;

    let c = &s.complaints;
    writeln!(out, "\nComplaints  {}", c.total)?;
    let mut rows = Vec::new();
    list_rows(&mut rows, "by topic", &c.by_topic);
    list_rows(&mut rows, "by product", &c.by_product);
    list_rows(&mut rows, "by room", &c.by_room);
    for (i, h) in c.by_hour.iter().enumerate() {
        let topics: Vec<String> = h.by_topic.iter().map(|(t, n)| format!("{t} {n}")).collect();
        rows.push(vec![
            if i == 0 { "by hour" } else { "" }.to_string(),
            utc_minute(h.hour_ms),
            h.n.to_string(),
            topics.join(", "),
        ]);
    }
    grid(out, "  ", &rows)?;

    let a = &s.attacks;
    writeln!(
        out,
        "\nAttacks  {}  ({} brigade(s), {} user(s) in them)",
        a.total, a.brigades, a.brigade_users
    )?;
    let mut rows = Vec::new();
    list_rows(&mut rows, "by topic", &a.by_topic);
    grid(out, "  ", &rows)?;

    let t = &s.tickets;
    writeln!(out, "\nTickets  {} opened", t.opened)?;
    let statuses = t.by_status.pairs();
    let mut rows = Vec::new();
    for (i, (name, n)) in statuses.iter().enumerate() {
        let l = if i == 0 { "by status" } else { "" };
        rows.push(vec![l.to_string(), (*name).to_string(), n.to_string()]);
    }
    grid(out, "  ", &rows)?;
    writeln!(out)?;
    let header = ["", "n", "median", "p90", "breaches"].map(String::from).to_vec();
    grid(
        out,
        "  ",
        &[
            header,
            timing_row("response", &t.response),
            timing_row("resolution", &t.resolution),
        ],
    )?;
    if !t.response_by_hour.is_empty() {
        writeln!(out, "\n  response by hour opened")?;
        let mut rows = vec![["hour (UTC)", "n", "median", "p90"].map(String::from).to_vec()];
        for h in &t.response_by_hour {
            rows.push(vec![
                utc_minute(h.hour_ms),
                h.n.to_string(),
                duration_cell(h.median_ms),
                duration_cell(h.p90_ms),
            ]);
        }
        grid(out, "    ", &rows)?;
    }

    writeln!(out, "\nRules (false positives first)")?;
    if s.rules.is_empty() {
        writeln!(out, "  none fired")?;
    } else {
        let mut rows = vec![["rule", "fired", "dismissed", "fp_rate"]
            .map(String::from)
            .to_vec()];
        for r in &s.rules {
            rows.push(vec![
                r.rule.clone(),
                r.fired.to_string(),
                r.dismissed.to_string(),
                format!("{:.3}", r.fp_rate),
            ]);
        }
        grid(out, "  ", &rows)?;
    }
    Ok(())
}

/// One CSV field, quoted per RFC 4180 when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `section,key,value` then one row per number. Sections: `window`, `complaints`,
/// `complaints_by_topic`, `complaints_by_product`, `complaints_by_room`, `complaints_by_hour`
/// (key `hour_ms`), `complaints_by_hour_topic` (key `hour_ms:topic`), `attacks`,
/// `attacks_by_topic`, `tickets`, `tickets_by_status`, `response`, `resolution`,
/// `response_by_hour_n`, `response_by_hour_median_ms`, `response_by_hour_p90_ms` (key
/// `hour_ms`), `rule_fired`, `rule_dismissed`, `rule_fp_rate`. A missing percentile is an
/// empty value. Lines end with CRLF, as RFC 4180 says.
pub fn render_csv(s: &Stats, out: &mut dyn Write) -> io::Result<()> {
    let mut row = |section: &str, key: &str, value: String| -> io::Result<()> {
        write!(out, "{},{},{}\r\n", field(section), field(key), field(&value))
    };
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    row("section", "key", "value".into())?;
    row("window", "since_ms", s.since_ms.to_string())?;
    row("window", "until_ms", s.until_ms.to_string())?;

    let c = &s.complaints;
    row("complaints", "total", c.total.to_string())?;
    for (section, list) in [
        ("complaints_by_topic", &c.by_topic),
        ("complaints_by_product", &c.by_product),
        ("complaints_by_room", &c.by_room),
    ] {
        for kc in list {
            row(section, &kc.key, kc.n.to_string())?;
        }
    }
    for h in &c.by_hour {
        row("complaints_by_hour", &h.hour_ms.to_string(), h.n.to_string())?;
        for (topic, n) in &h.by_topic {
            row(
                "complaints_by_hour_topic",
                &format!("{}:{topic}", h.hour_ms),
                n.to_string(),
            )?;
        }
    }

    let a = &s.attacks;
    row("attacks", "total", a.total.to_string())?;
    row("attacks", "brigades", a.brigades.to_string())?;
    row("attacks", "brigade_users", a.brigade_users.to_string())?;
    for kc in &a.by_topic {
        row("attacks_by_topic", &kc.key, kc.n.to_string())?;
    }

    let t = &s.tickets;
    row("tickets", "opened", t.opened.to_string())?;
    for (name, n) in t.by_status.pairs() {
        row("tickets_by_status", name, n.to_string())?;
    }
    for (section, tm) in [("response", &t.response), ("resolution", &t.resolution)] {
        row(section, "n", tm.n.to_string())?;
        row(section, "median_ms", opt(tm.median_ms))?;
        row(section, "p90_ms", opt(tm.p90_ms))?;
        row(section, "breaches", tm.breaches.to_string())?;
    }
    for h in &t.response_by_hour {
        let key = h.hour_ms.to_string();
        row("response_by_hour_n", &key, h.n.to_string())?;
        row("response_by_hour_median_ms", &key, opt(h.median_ms))?;
        row("response_by_hour_p90_ms", &key, opt(h.p90_ms))?;
    }

    for r in &s.rules {
        row("rule_fired", &r.rule, r.fired.to_string())?;
        row("rule_dismissed", &r.rule, r.dismissed.to_string())?;
        row("rule_fp_rate", &r.rule, r.fp_rate.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_dates_fields_and_widths() {
        for (ms, want) in [
            (0, "0ms"),
            (850, "850ms"),
            (90_000, "1m 30s"),
            (400_000, "6m 40s"),
            (420_000, "7m"),
            (3_600_000, "1h"),
            (3_601_000, "1h"),
            (5_400_000, "1h 30m"),
            (12_000_000, "3h 20m"),
            (2 * 86_400_000 + 3 * 3_600_000, "2d 3h"),
        ] {
            assert_eq!(human_ms(ms), want, "{ms}");
        }
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        assert_eq!(utc_minute(1_764_043_200_000), "2025-11-25 04:00");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(field("jade bangle"), "jade bangle");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(width("玉镯 ring"), 9);
    }
}
