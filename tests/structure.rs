//! The crate's import graph has no circles: no source file imports one that
//! imports it back (through any chain), and no top-level module (`gpu`,
//! `nn`, `train`, `reference`, ...) imports one that imports it back; the
//! host layer (`gpu`) imports nothing but `activation` and `error`.
//!
//! The graph is read from the sources: every `use` item and every
//! `crate::`/`super::` path outside comments, resolved to the longest module
//! path that exists (names re-exported by a `mod.rs` or `lib.rs` resolve to
//! the module that defines them). Test modules (`gpu/tests/`) are left out:
//! tests may reach across layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

struct Crate {
    /// Every module's file text, by module path (`[]` is the crate root).
    files: BTreeMap<Module, String>,
    /// `(module, name)` re-exported by that module → the module defining it.
    reexports: BTreeMap<(Module, String), Module>,
}

fn module_of(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).expect("reading src/") {
        let path = entry.expect("reading src/").path();
        if path.is_dir() {
            walk(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap();
            if rel.starts_with("bin") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(module_of(rel), strip_comments(&text));
        }
    }
}

/// The text with `//` comments (doc comments included) removed.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a `use` tree names, braces expanded: `a::{b, c::{d}}` gives
/// `a::b` and `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = Vec::new();
    expand_into("", &tree, &mut out);
    out
}

fn expand_into(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items.into_iter().filter(|i| !i.is_empty()) {
        match item.find("::{") {
            Some(i) if item.ends_with('}') => {
                expand_into(
                    &format!("{prefix}{}::", &item[..i]),
                    &item[i + 3..item.len() - 1],
                    out,
                );
            }
            _ => out.push(format!("{prefix}{item}")),
        }
    }
}

/// Every `use` item's paths in `text`.
fn use_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = rest.find(';') {
            out.extend(expand(&rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

/// Every `crate::a::b` or `super::a` path written in `text`.
fn written_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            let before = text[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let end = text[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(text.len(), |e| at + e);
            out.push(text[at..end].trim_end_matches(':').to_string());
        }
    }
    out
}

impl Crate {
    fn read() -> Crate {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = BTreeMap::new();
        walk(&root, &root, &mut files);
        let mut krate = Crate {
            files,
            reexports: BTreeMap::new(),
        };
        let mut reexports = BTreeMap::new();
        for (module, text) in &krate.files {
            for line in text.split(';') {
                let Some(i) = line.find("pub use ") else {
                    continue;
                };
                for path in expand(&line[i + 8..]) {
                    let parts: Vec<&str> = path.split("::").collect();
                    let (name, head) = parts.split_last().unwrap();
                    let mut full = module.clone();
                    let mut head = head.to_vec();
                    if head.first() == Some(&"crate") {
                        full.clear();
                        head.remove(0);
                    }
                    full.extend(head.iter().map(|s| s.to_string()));
                    let target = krate.longest_module(&full);
                    if &target != module {
                        reexports.insert((module.clone(), name.to_string()), target);
                    }
                }
            }
        }
        krate.reexports = reexports;
        krate
    }

    fn longest_module(&self, path: &[String]) -> Module {
        (0..=path.len())
            .rev()
            .map(|i| path[..i].to_vec())
            .find(|m| self.files.contains_key(m))
            .unwrap_or_default()
    }

    /// The module `path` (written in `module`) refers to, if it is in this crate.
    fn resolve(&self, module: &Module, path: &str) -> Option<Module> {
        let mut parts = path.split("::").peekable();
        let mut full: Module = match parts.peek() {
            Some(&"crate") => {
                parts.next();
                Vec::new()
            }
            Some(&"super") | Some(&"self") => {
                let mut base = module.clone();
                while let Some(&p) = parts.peek() {
                    match p {
                        "super" => {
                            base.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    parts.next();
                }
                base
            }
            _ => return None,
        };
        full.extend(parts.map(str::to_string));
        for i in (1..full.len()).rev() {
            let head = full[..i].to_vec();
            if self.files.contains_key(&head) {
                if let Some(target) = self.reexports.get(&(head, full[i].clone())) {
                    return Some(target.clone());
                }
            }
        }
        Some(self.longest_module(&full))
    }

    /// File-level edges, test modules left out, a module's own ancestors
    /// (`super::` items of a parent) not counted.
    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut edges = BTreeMap::new();
        for (module, text) in &self.files {
            if module.iter().any(|p| p == "tests") {
                continue;
            }
            // A file's own `#[cfg(test)] mod tests { .. }` is test code too.
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => text,
            };
            let mut to = BTreeSet::new();
            for path in use_paths(code).into_iter().chain(written_paths(code)) {
                if let Some(target) = self.resolve(module, &path) {
                    if !module.starts_with(&target) && target.iter().all(|p| p != "tests") {
                        to.insert(target);
                    }
                }
            }
            edges.insert(module.clone(), to);
        }
        edges
    }
}

/// Every cycle's members (strongly connected components of two or more).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    // Reachability by repeated search: the graphs here have tens of nodes.
    let reach = |from: &Module| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(m) = stack.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    stack.push(n.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&Module, BTreeSet<Module>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut out: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, r) in &reaches {
        if !r.contains(*m) {
            continue;
        }
        let component: Vec<String> = reaches
            .iter()
            .filter(|(n, rn)| rn.contains(*m) && r.contains(**n))
            .map(|(n, _)| n.join("::"))
            .collect();
        out.insert(component);
    }
    out.into_iter().collect()
}

#[test]
fn no_source_file_imports_one_that_imports_it_back() {
    let krate = Crate::read();
    let edges = krate.edges();
    assert!(
        edges.len() > 40,
        "only {} modules found: is src/ where it was?",
        edges.len()
    );
    assert!(
        edges[&vec!["gpu".to_string(), "linear".to_string()]]
            .contains(&vec!["gpu".to_string(), "context".to_string()]),
        "the reader misses gpu::linear's import of gpu::context"
    );
    let found = cycles(&edges);
    assert!(found.is_empty(), "import circles between files: {found:?}");
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let krate = Crate::read();
    let mut top: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, to) in krate.edges() {
        let Some(a) = from.first() else { continue };
        for t in to {
            if let Some(b) = t.first() {
                if a != b {
                    top.entry(vec![a.clone()])
                        .or_default()
                        .insert(vec![b.clone()]);
                }
            }
        }
    }
    let found = cycles(&top);
    assert!(
        found.is_empty(),
        "import circles between modules: {found:?}"
    );
    let gpu: BTreeSet<String> = top[&vec!["gpu".to_string()]]
        .iter()
        .map(|m| m.join("::"))
        .collect();
    let allowed: BTreeSet<String> = ["activation", "error"].map(String::from).into();
    assert!(
        gpu.is_subset(&allowed),
        "the host layer imports from modules above it: {:?}",
        gpu.difference(&allowed).collect::<Vec<_>>()
    );
}

#[test]
fn the_reader_finds_a_circle_where_there_is_one() {
    let a = vec!["a".to_string()];
    let b = vec!["b".to_string()];
    let c = vec!["c".to_string()];
    let edges: BTreeMap<Module, BTreeSet<Module>> = [
        (a.clone(), [b.clone()].into()),
        (b.clone(), [c.clone()].into()),
        (c.clone(), [a.clone()].into()),
    ]
    .into();
    assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        expand("crate::{a::{B, C}, d}"),
        ["crate::a::B", "crate::a::C", "crate::d"]
    );
    assert_eq!(
        written_paths("let x = crate::gpu::Gpu::new(); super::y()"),
        ["crate::gpu::Gpu::new", "super::y"]
    );
}
