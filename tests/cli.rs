//! The real binary: what a user running `liveguard classify` and `liveguard rules` sees.

use crate::util::{rules_dir, run, FIXTURE};

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect()
}

#[test]
fn classify_jsonl_answers_every_line_with_id_label_and_evidence() {
    let dir = rules_dir(&[("fx.toml", FIXTURE)]);
    let input = concat!(
        r#"{"id":"a1","text":"上次买的宝石有裂","user":"amy","room":"r1"}"#,
        "\n",
        r#"{"id":7,"text":"主播好漂亮"}"#,
        "\n",
        r#"{"text":"加我vx 看更好的"}"#,
        "\n"
    );
    let out = run(dir.path(), &["classify", "--rules", "."], input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = lines(&out.stdout);
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["id"], "a1");
    assert_eq!(v[0]["label"], "complaint");
    assert_eq!(v[0]["topic"], "defect");
    assert_eq!(v[0]["action"], "invite_costream");
    assert_eq!(v[0]["room"], "r1");
    assert_eq!(v[0]["script"], "看到amy的反馈，这款我们现场解决");
    assert_eq!(v[0]["evidence"][1]["text"], "裂");
    assert_eq!(v[1]["id"], 7);
    assert_eq!(v[1]["label"], "neutral");
    assert_eq!(v[2]["id"], 3, "a line without id is numbered");
    assert_eq!(v[2]["label"], "attack");
    assert_eq!(v[2]["topic"], "diversion");
}

#[test]
fn malformed_lines_get_an_error_object_and_processing_continues() {
    let dir = rules_dir(&[("fx.toml", FIXTURE)]);
    let input = "{\"id\":\"ok1\",\"text\":\"你们是骗子\"}\nnot json at all\n{\"id\":\"x\",\"txt\":1}\n{\"id\":\"ok2\",\"text\":\"好\"}\n";
    let out = run(dir.path(), &["classify", "--rules", "."], input);
    assert_eq!(out.status.code(), Some(1), "a failed line makes exit code 1");
    let v = lines(&out.stdout);
    assert_eq!(v.len(), 4);
    assert_eq!(v[0]["label"], "attack");
    assert_eq!(v[1]["line"], 2);
    assert!(v[1]["error"].as_str().is_some_and(|e| e.contains("line 2")));
    assert_eq!(v[2]["id"], "x", "the id of a malformed object is kept");
    assert_eq!(v[2]["error"], "line 3: not a comment: no \"text\" field");
    assert_eq!(v[3]["id"], "ok2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: not a comment"), "{err}");
    assert!(err.contains("line 3: not a comment"), "{err}");
}

/// One line of invalid UTF-8, or JSON of the wrong shape, is reported in plain words and the
/// run goes on (it used to abort, or to print `expected struct InLine with 5 elements`).
#[test]
fn invalid_utf8_and_wrong_shapes_are_bad_lines_in_plain_words() {
    let dir = rules_dir(&[("fx.toml", FIXTURE)]);
    let mut input =
        b"{\"id\":\"a\",\"text\":\"\xe4\xbd\xa0\xe4\xbb\xac\xe6\x98\xaf\xe9\xaa\x97\xe5\xad\x90\"}\n"
            .to_vec();
    input.extend_from_slice(b"\xff\xfe{\"text\":\"x\"}\n[1,2]\n{\"text\":7}\n{\"id\":\"z\",\"text\":\"\xe5\xa5\xbd\",\"user\":42}\n");
    let out = crate::util::run_bytes(dir.path(), &["classify", "--rules", "."], &input);
    assert_eq!(out.status.code(), Some(1), "bad lines make exit code 1");
    let v = lines(&out.stdout);
    assert_eq!(v.len(), 5, "every line answered: {v:?}");
    assert_eq!(v[0]["label"], "attack");
    assert_eq!(
        v[1]["error"],
        "line 2: not a comment: not UTF-8 text (invalid byte at column 1)"
    );
    assert_eq!(
        v[2]["error"],
        "line 3: not a comment: expected an object like {\"text\": \"...\"}, got a list"
    );
    assert_eq!(v[3]["error"], "line 4: not a comment: \"text\" must be a string");
    assert_eq!(
        (&v[4]["id"], &v[4]["user"]),
        (&serde_json::json!("z"), &serde_json::json!("42"))
    );
    let err = String::from_utf8_lossy(&out.stderr);
    for internal in ["InLine", "struct", "ident", "sequence"] {
        assert!(!err.contains(internal), "{internal} in {err}");
    }
}

#[test]
fn classify_text_format_reads_plain_lines() {
    let dir = rules_dir(&[("fx.toml", FIXTURE)]);
    let out = run(
        dir.path(),
        &["classify", "--rules", ".", "--format", "text"],
        "你們是騙*子\n\n好看\n",
    );
    assert_eq!(out.status.code(), Some(0));
    let v = lines(&out.stdout);
    assert_eq!(v.len(), 2, "blank lines are skipped");
    assert_eq!(v[0]["label"], "attack");
    assert_eq!(v[0]["evidence"][0]["text"], "騙*子");
    assert_eq!(v[1]["id"], 3);
}

#[test]
fn broken_rules_stop_classify_with_exit_2_and_the_location() {
    let dir = rules_dir(&[("zh/bad.toml", "[pack]\nid = \"b\"\nlang = \"zh\"\n[[regex]]\nid = \"zh-bad-re\"\nclass = \"attack\"\ntopic = \"spam\"\nweight = 0.5\npattern = '(unclosed'\n")]);
    let out = run(dir.path(), &["classify", "--rules", "."], "hello\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zh/bad.toml:9: zh-bad-re: invalid regex"), "{err}");
}

#[test]
fn rules_check_reports_every_broken_rule_with_file_line_and_id() {
    let bad = "[pack]\nid = \"b\"\nlang = \"en\"\n\
               [[keywords]]\nid = \"en-a\"\nclass = \"attack\"\ntopic = \"insult\"\nweight = 0.5\nterms = [\"ok\", \"\"]\n\
               [[keywords]]\nid = \"en-b\"\nclass = \"attack\"\ntopic = \"rudeness\"\nweight = 0.5\nterms = [\"x\"]\n";
    let dir = rules_dir(&[("en/bad.toml", bad), ("fx.toml", FIXTURE)]);
    let out = run(dir.path(), &["rules", "check", "."], "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("en/bad.toml:9: en-a: empty keyword"), "{err}");
    assert!(
        err.contains("en/bad.toml:13: en-b: unknown topic \"rudeness\""),
        "{err}"
    );
}

#[test]
fn rules_check_reports_toml_syntax_errors_with_line() {
    let dir = rules_dir(&[("x.toml", "[pack]\nid = \"x\"\nlang = \"zh\"\n[[keywords]\n")]);
    let out = run(dir.path(), &["rules", "check", "."], "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x.toml:4:"), "{err}");
}

#[test]
fn rules_check_runs_examples_and_prints_failures() {
    let pack = format!(
        "{FIXTURE}\n[[example]]\ntext = \"上次买的宝石有裂\"\nclass = \"complaint\"\ntopic = \"defect\"\n\n[[example]]\ntext = \"主播好漂亮\"\nclass = \"attack\"\n"
    );
    let dir = rules_dir(&[("fx.toml", &pack)]);
    let out = run(dir.path(), &["rules", "check", "."], "");
    assert_eq!(out.status.code(), Some(1), "a failing example exits 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("example \"主播好漂亮\": expected attack, got neutral"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 2 examples pass"), "{stdout}");
}

#[test]
fn rules_explain_shows_normalized_text_and_negated_hits() {
    let dir = rules_dir(&[("fx.toml", FIXTURE)]);
    let out = run(
        dir.path(),
        &["rules", "explain", "--rules", ".", "沒有裂，騙*子"],
        "",
    );
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("normalized: 没有裂骗子"), "{s}");
    assert!(s.contains("fx-crack") && s.contains("(negated)"), "{s}");
    assert!(s.contains("\"騙*子\""), "{s}");
}

#[test]
fn missing_rules_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run(dir.path(), &["classify", "--rules", "nope"], "x\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.contains("cannot read rules directory"),
        "{err}"
    );
}

/// `config check` makes the checks `run` makes and reports every problem, each with its line;
/// it used to show one error per run, some without a line, and to pass an empty file and a
/// missing rules directory that `run` then refused.
#[test]
fn config_check_reports_every_problem_with_its_line_like_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write(
        "bad.toml",
        "colour = 1\nworkers = \"two\"\nlisten = \"nowhere\"\n[[source]]\nurl = \"ws://a/\"\nformat = \"telepathy\"\n\
         [[source]]\nurl = \"http://b/\"\nformat = \"canonical\"\n[tickets]\nrespond_ms = 600000\n",
    );
    let out = run(dir.path(), &["config", "check", "bad.toml"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "bad.toml:1: unknown field `colour`",
        "bad.toml:2: wrong type: string \"two\", expected a whole number",
        "bad.toml:3: listen: \"nowhere\" is not an address",
        "bad.toml:6: unknown variant `telepathy`",
        "bad.toml:8: source[1].url: \"http://b/\" is not a ws:// or wss:// URL",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    // `run` refuses the same file with the same lines.
    let run_out = run(dir.path(), &["run", "--config", "bad.toml"], "");
    assert_eq!(run_out.status.code(), Some(2));
    let run_err = String::from_utf8_lossy(&run_out.stderr);
    assert!(
        run_err.contains("bad.toml:1: unknown field `colour`")
            && run_err.contains("bad.toml:8: source[1].url"),
        "{run_err}"
    );

    write("empty.toml", "");
    let out = run(dir.path(), &["config", "check", "empty.toml"], "");
    assert_eq!(out.status.code(), Some(2), "run would have no firehose");
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty.toml:1: no [[source]]"));

    write(
        "norules.toml",
        "rules = \"missing\"\n[[source]]\nurl = \"ws://127.0.0.1:1/\"\nformat = \"canonical\"\n",
    );
    let out = run(dir.path(), &["config", "check", "norules.toml"], "");
    assert_eq!(out.status.code(), Some(2), "run would not find its rules");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("norules.toml:1: rules: missing: cannot read rules directory"),
        "{err}"
    );

    // A partial [tickets] table takes the README's defaults.
    write(
        "ok.toml",
        "[[source]]\nurl = \"ws://127.0.0.1:1/\"\nformat = \"canonical\"\n[tickets]\nrespond_ms = 600000\n",
    );
    let out = run(dir.path(), &["config", "check", "ok.toml"], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok.toml: ok"));
}

/// From a directory with no rules: `rules check` checks the set `run` would use, and
/// `run --help` says where the rules and the database come from on this machine.
#[test]
fn run_help_shows_the_defaults_and_rules_check_uses_the_built_in_set() {
    let empty = tempfile::tempdir().expect("tmp");
    let built_in = !std::path::Path::new(liveguard::rules::source::SYSTEM_DIR).is_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"))
        .args(["run", "--help"])
        .current_dir(empty.path())
        .env("LIVEGUARD_STATE_DIR", "/srv/lg-state")
        .output()
        .expect("liveguard runs");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "rules     --rules DIR, else $LIVEGUARD_RULES",
        "/etc/liveguard/rules",
        "the packs built into this binary (en/common.toml",
        "database  `[store] path` in --config, else /srv/lg-state/liveguard.db",
        "source_down_ms",
    ] {
        assert!(help.contains(want), "{want:?} not in\n{help}");
    }
    if built_in {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"))
            .args(["rules", "check"])
            .current_dir(empty.path())
            .env_remove("LIVEGUARD_RULES")
            .output()
            .expect("liveguard runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with("the packs built into this binary: ") && said.contains("examples pass"),
            "{said}"
        );
    }
}
