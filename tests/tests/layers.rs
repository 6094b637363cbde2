//! The module graphs of the daemon and of the client have no cycle: a
//! module never reaches, through others, back to itself. The daemon is read
//! by its top-level modules (`supervisor`, `checks`, …); the client by its
//! top-level modules and each command file apart (`commands::edit`), since
//! one command leaning on another was its knot.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of `file` under `src`: `supervisor/app.rs` is
/// `["supervisor", "app"]`, `supervisor/mod.rs` is `["supervisor"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The node of a module path: its top-level module, or, under one of
/// `split`, the top-level module and the next.
fn node(path: &[String], split: &[&str], src: &Path) -> Option<String> {
    let top = path.first()?;
    if let Some(second) = path.get(1).filter(|_| split.contains(&top.as_str())) {
        let dir = src.join(top);
        if dir.join(format!("{second}.rs")).exists() || dir.join(second).join("mod.rs").exists() {
            return Some(format!("{top}::{second}"));
        }
    }
    Some(top.clone())
}

/// The paths named after `prefix` in `text`, `use prefix::{a, b::c}`
/// groups opened: each as its identifiers.
fn named_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|p| !p.is_empty())
            .collect()
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find(prefix) {
            rest = &rest[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    out.push(ident(item.trim()));
                }
            } else {
                out.push(ident(rest));
            }
        }
    }
    out
}

/// The graph of the crate whose sources are in `src`.
fn graph(src: &Path, split: &[&str]) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let module = module_of(src, &file);
        let Some(from) = node(&module, split, src) else {
            // lib.rs or main.rs: the crate's root wires every module.
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let mut targets: Vec<Vec<String>> = named_after(&text, "crate::");
        // `super::` from a file below a split module names its siblings.
        if module.len() == 2 && split.contains(&module[0].as_str()) {
            for path in named_after(&text, "super::") {
                let mut full = vec![module[0].clone()];
                full.extend(path);
                targets.push(full);
            }
        }
        let edges = graph.entry(from.clone()).or_default();
        for target in targets {
            if let Some(to) = node(&target, split, src) {
                // A split module's own file dispatches to its children.
                if to != from && !to.starts_with(&format!("{from}::")) {
                    edges.insert(to);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the nodes along it, if there is one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn source(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src")
}

#[test]
fn the_daemons_modules_form_no_cycle() {
    let graph = graph(&source("daemon"), &[]);
    assert!(graph.len() > 15, "{graph:?}");
    assert_eq!(cycle(&graph), None, "the daemon's modules form a cycle");
}

#[test]
fn the_clients_modules_and_commands_form_no_cycle() {
    let graph = graph(&source("client"), &["commands"]);
    assert!(graph.contains_key("commands::edit"), "{graph:?}");
    assert_eq!(cycle(&graph), None, "the client's modules form a cycle");
}

#[test]
fn a_cycle_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("commands")).unwrap();
    std::fs::write(src.join("commands/mod.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(src.join("commands/a.rs"), "use super::b::run;\n").unwrap();
    std::fs::write(
        src.join("commands/b.rs"),
        "use crate::{output, commands::a::go};\n",
    )
    .unwrap();
    std::fs::write(
        src.join("output.rs"),
        "// crate::commands::b in a comment\n",
    )
    .unwrap();
    let found = cycle(&graph(src, &["commands"])).expect("a cycle");
    assert!(found.contains(&"commands::a".to_string()), "{found:?}");
    assert!(found.contains(&"commands::b".to_string()), "{found:?}");
    std::fs::write(src.join("commands/a.rs"), "use super::Ctx;\n").unwrap();
    assert_eq!(cycle(&graph(src, &["commands"])), None);
}
