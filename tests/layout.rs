//! The crate's layout as the README draws it: the graph of top-level modules (who names whom
//! through `crate::`) has no cycle, and the pipeline's stages only look downstream-to-upstream
//! (ingest names nothing after it, the store nothing of alerts, the daemon or the server).
//! Read from the source files, so a change that bends the flow fails here with the path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the modules it names, each with one file that does.
fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for path in files {
        let rel = path.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        // Unit tests may reach anywhere; doc comments may link anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for rest in line.split("crate::").skip(1) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.entry(name).or_insert_with(|| rel.to_path_buf());
                }
            }
        }
    }
    graph
}

fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        m: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for dep in g.get(m).into_iter().flat_map(|d| d.keys()) {
            if let Some(c) = visit(g, dep, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 10, "read the modules: {:?}", graph.keys());
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} -> {} (in src/{})", w[0], w[1], graph[&w[0]][&w[1]].display()))
            .collect();
        panic!("module cycle:\n  {}", steps.join("\n  "));
    }
}

#[test]
fn each_stage_names_only_what_comes_before_it() {
    let graph = module_graph();
    let forbidden: &[(&str, &[&str])] = &[
        (
            "ingest",
            &[
                "normalize",
                "rules",
                "classify",
                "history",
                "alerts",
                "store",
                "daemon",
                "server",
            ],
        ),
        (
            "normalize",
            &[
                "rules", "classify", "history", "alerts", "store", "daemon", "server",
            ],
        ),
        (
            "rules",
            &["classify", "history", "alerts", "store", "daemon", "server"],
        ),
        ("classify", &["history", "alerts", "store", "daemon", "server"]),
        ("history", &["alerts", "store", "bus", "daemon", "server"]),
        ("store", &["alerts", "bus", "daemon", "server"]),
        ("alerts", &["bus", "daemon", "server"]),
        ("server", &["bus", "daemon"]),
        ("bus", &["daemon"]),
    ];
    let mut wrong = Vec::new();
    for (module, later) in forbidden {
        let deps = graph.get(*module).unwrap_or_else(|| panic!("no module {module}"));
        for l in *later {
            if let Some(file) = deps.get(*l) {
                wrong.push(format!("{module} names {l} (src/{})", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "data must flow one way:\n  {}",
        wrong.join("\n  ")
    );
}
