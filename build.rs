//! Embeds every file under `rules/` (packs, and any model file beside them) in the binary, so
//! `liveguard` runs from any directory without `--rules`. Writes `$OUT_DIR/embedded_rules.rs`:
//! a sorted list of (path relative to `rules/`, bytes), read by `src/rules/source.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("rules");
    // A directory here makes cargo rebuild when any file under it is added, changed or removed.
    println!("cargo:rerun-if-changed=rules");
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut code = String::from(
        "/// Every file under `rules/` at build time: (relative path, bytes), sorted by path.\n",
    );
    code.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for path in &files {
        let rel: Vec<String> = path
            .strip_prefix(&root)
            .expect("walked from the root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let _ = writeln!(
            code,
            "    ({:?}, include_bytes!({:?})),",
            rel.join("/"),
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_rules.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}
