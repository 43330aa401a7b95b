//! Where the rules come from: a directory ops edit (`--rules DIR`, `LIVEGUARD_RULES`, the
//! config's `rules`, or `/etc/liveguard/rules` when it exists), else the packs built into the
//! binary (every file under `rules/` at build time, see `build.rs`). Both give the same list of
//! [`RuleFile`]s (relative path, bytes), so packs, and any model file beside them, load through
//! one code path whichever set is live.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::RuleError;

mod built_in {
    include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));
}

/// The system-wide rules directory, used when it exists and nothing more specific was given.
pub const SYSTEM_DIR: &str = "/etc/liveguard/rules";

/// How error messages name a built-in file: `<built-in>/zh/common.toml`.
pub const BUILT_IN_PREFIX: &str = "<built-in>";

/// One file of a rule set.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// How errors name it: the file on disk, or `<built-in>/REL`.
    pub path: PathBuf,
    /// Path relative to the rules root, `/`-separated (`zh/common.toml`, `model/zh.lgm`).
    pub rel: String,
    /// The contents.
    pub bytes: Cow<'static, [u8]>,
}

impl RuleFile {
    /// Whether the file name ends in `.ext`.
    pub fn has_ext(&self, ext: &str) -> bool {
        Path::new(&self.rel).extension().is_some_and(|e| e == ext)
    }
}

/// Every file built into the binary, as (relative path, bytes), sorted by path.
pub fn built_in() -> &'static [(&'static str, &'static [u8])] {
    built_in::FILES
}

/// A set of rule files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// The packs built into the binary.
    BuiltIn,
    /// A directory, read recursively.
    Dir(PathBuf),
}

impl RuleSource {
    /// The set to use: `explicit` (a flag, a variable or the config) when given, else
    /// [`SYSTEM_DIR`] when it is a directory, else the built-in packs.
    pub fn resolve(explicit: Option<&Path>) -> Self {
        Self::resolve_with(explicit, Path::new(SYSTEM_DIR))
    }

    /// [`resolve`](Self::resolve) with another system directory (for tests).
    pub fn resolve_with(explicit: Option<&Path>, system: &Path) -> Self {
        match explicit {
            Some(dir) => Self::Dir(dir.to_path_buf()),
            None if system.is_dir() => Self::Dir(system.to_path_buf()),
            None => Self::BuiltIn,
        }
    }

    /// The directory, for a set read from one (hot reload watches it).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Self::BuiltIn => None,
            Self::Dir(d) => Some(d),
        }
    }

    /// Every file of the set, sorted by relative path.
    pub fn files(&self) -> Result<Vec<RuleFile>, RuleError> {
        match self {
            Self::BuiltIn => Ok(built_in()
                .iter()
                .map(|(rel, bytes)| RuleFile {
                    path: Path::new(BUILT_IN_PREFIX).join(rel),
                    rel: (*rel).to_string(),
                    bytes: Cow::Borrowed(*bytes),
                })
                .collect()),
            Self::Dir(dir) => read_dir(dir),
        }
    }
}

impl std::fmt::Display for RuleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BuiltIn => f.write_str("the packs built into this binary"),
            Self::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

fn unreadable(path: &Path, what: &str, e: &std::io::Error) -> RuleError {
    RuleError {
        path: path.to_path_buf(),
        line: 0,
        id: None,
        message: format!("cannot read {what}: {e}"),
    }
}

/// Every file under `dir`, recursively, sorted by relative path.
fn read_dir(dir: &Path) -> Result<Vec<RuleFile>, RuleError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| {
            let mut err = unreadable(&d, "rules directory", &e);
            if d == dir {
                err.message.push_str(
                    " (leave out --rules / LIVEGUARD_RULES / `rules` to use the packs built into liveguard)",
                );
            }
            err
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel: Vec<String> = p
                .strip_prefix(dir)
                .unwrap_or(&p)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let bytes = std::fs::read(&p).map_err(|e| unreadable(&p, "file", &e))?;
            out.push(RuleFile {
                path: p,
                rel: rel.join("/"),
                bytes: Cow::Owned(bytes),
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_under_rules_is_built_in_byte_for_byte() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let on_disk = RuleSource::Dir(root).files().expect("the repo's rules read");
        let built_in = RuleSource::BuiltIn.files().expect("built in");
        let names = |fs: &[RuleFile]| fs.iter().map(|f| f.rel.clone()).collect::<Vec<_>>();
        assert_eq!(names(&built_in), names(&on_disk));
        for (a, b) in built_in.iter().zip(&on_disk) {
            assert_eq!(a.bytes, b.bytes, "{}", a.rel);
        }
        assert!(built_in.iter().any(|f| f.rel == "zh/common.toml"));
        assert_eq!(
            built_in[0].path.to_string_lossy(),
            format!("{BUILT_IN_PREFIX}/{}", built_in[0].rel)
        );
    }

    /// A model file beside the packs (binary, not UTF-8) is listed with its exact bytes, for
    /// its own loader; the pack loader reads only the `*.toml`.
    #[test]
    fn files_other_than_packs_come_along_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tmp");
        let pack = "[pack]\nid = \"p\"\nlang = \"en\"\n[[terms]]\nid = \"t\"\nterms = [\"x\"]\n";
        std::fs::write(dir.path().join("p.toml"), pack).expect("write");
        std::fs::create_dir(dir.path().join("model")).expect("mkdir");
        let model = [0x4c, 0x47, 0x4d, 0x00, 0xff, 0xfe, 0x80];
        std::fs::write(dir.path().join("model/zh.lgm"), model).expect("write");
        let source = RuleSource::Dir(dir.path().to_path_buf());
        let files = source.files().expect("reads");
        let rels: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["model/zh.lgm", "p.toml"]);
        assert!(files[0].has_ext("lgm") && &*files[0].bytes == model.as_slice());
        let set = super::super::load_packs(&source).expect("the pack loads; the model is not a pack");
        assert_eq!(set.packs.len(), 1);
        // The model's own loader checks it, and says which file is at fault.
        let err = super::super::load(&source).expect_err("not a model").to_string();
        assert!(
            err.contains("model/zh.lgm: bad model file: not a liveguard model file"),
            "{err}"
        );
    }

    #[test]
    fn a_flag_beats_the_system_dir_which_beats_the_built_in_set() {
        let sys = tempfile::tempdir().expect("tmp");
        let missing = sys.path().join("missing");
        assert_eq!(RuleSource::resolve_with(None, &missing), RuleSource::BuiltIn);
        assert_eq!(
            RuleSource::resolve_with(None, sys.path()),
            RuleSource::Dir(sys.path().to_path_buf())
        );
        assert_eq!(
            RuleSource::resolve_with(Some(Path::new("mine")), sys.path()),
            RuleSource::Dir("mine".into())
        );
    }
}
