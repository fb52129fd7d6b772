//! The import rules of docs/ARCHITECTURE.md, enforced: every `crate::…`
//! path in a room's code names a room its row allows, every room is in the
//! table, rows only name rooms listed before them, and no two sibling files
//! of a room import each other.
//!
//! Reads the source, not the compiler's view: comments (doc comments and
//! their examples included) are skipped, so an intra-doc link is not an
//! import.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The import table: room → rooms it may import, in the table's order.
fn rules() -> Vec<(String, BTreeSet<String>)> {
    let doc = fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("## Import rules")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has an `## Import rules` section");
    section
        .lines()
        .skip_while(|line| !line.starts_with("| room"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let allowed = cells[1]
                .split(',')
                .map(str::trim)
                .filter(|room| !room.is_empty())
                .map(str::to_owned)
                .collect();
            (cells[0].to_owned(), allowed)
        })
        .collect()
}

/// Every `.rs` file under `dir` with its module path (`["http", "resolve"]`
/// for `src/http/resolve/mod.rs`) and its code.
fn sources(dir: &Path, module: &[String], out: &mut Vec<(Vec<String>, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            let mut inner = module.to_vec();
            inner.push(name);
            sources(&path, &inner, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let mut path_of = module.to_vec();
            if name != "mod" && name != "lib" {
                path_of.push(name);
            }
            out.push((path_of, code_of(&fs::read_to_string(&path).unwrap())));
        }
    }
}

fn all_sources() -> Vec<(Vec<String>, String)> {
    let mut files = Vec::new();
    sources(&root().join("src"), &[], &mut files);
    files
}

/// The rooms `lib.rs` re-exports each root name from (`Error` → `error`),
/// so `crate::Error` counts as an import of `error`.
fn root_names(files: &[(Vec<String>, String)]) -> BTreeMap<String, String> {
    let (_, lib) = files.iter().find(|(module, _)| module.is_empty()).unwrap();
    references(&[], lib)
        .into_iter()
        .filter(|path| path.len() >= 2)
        .map(|path| (path[path.len() - 1].clone(), path[0].clone()))
        .collect()
}

/// The source without comments and string contents.
fn code_of(source: &str) -> String {
    let mut code = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        code.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                code.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('x', '\n') or a lifetime ('a): keep
                // lifetimes, drop literals.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                } else {
                    code.push(c);
                }
            }
            _ => code.push(c),
        }
    }
    code
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths a file refers to: each `crate::a::b` as `[a, b]`, and
/// each `super::…` resolved against `module` (the file's own module path),
/// through `{…}` groups.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != ':';
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let base = if boundary && rest.starts_with("crate::") {
            i += 7;
            Some(Vec::new())
        } else if boundary && rest.starts_with("super::") {
            // `super` in `a/b.rs` (module [a, b]) is `a`; in `a/mod.rs`
            // (module [a]) it is the crate root.
            let mut base = module.to_vec();
            base.pop();
            i += 7;
            while bytes[i..].iter().collect::<String>().starts_with("super::") {
                base.pop();
                i += 7;
            }
            Some(base)
        } else {
            None
        };
        match base {
            Some(base) => {
                let (paths, end) = path_tree(&bytes, i);
                for path in paths {
                    let mut full = base.clone();
                    full.extend(path);
                    found.push(full);
                }
                i = end;
            }
            None => i += 1,
        }
    }
    found
}

/// Parses `a::b::{C, d::e}` at `at`: the paths it names, each to its last
/// segment (`[a, b, C]`, `[a, b, d, e]`), and where it ends.
fn path_tree(chars: &[char], mut at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        if chars.get(at) == Some(&'{') {
            let mut paths = Vec::new();
            at += 1;
            loop {
                while chars
                    .get(at)
                    .is_some_and(|c| c.is_whitespace() || *c == ',')
                {
                    at += 1;
                }
                if chars.get(at).is_none_or(|c| *c == '}') {
                    return (
                        paths
                            .into_iter()
                            .map(|p: Vec<String>| {
                                let mut full = prefix.clone();
                                full.extend(p);
                                full
                            })
                            .collect(),
                        at + 1,
                    );
                }
                let (inner, end) = path_tree(chars, at);
                paths.extend(inner);
                at = end;
            }
        }
        let start = at;
        while chars.get(at).copied().is_some_and(is_ident) {
            at += 1;
        }
        let segment: String = chars[start..at].iter().collect();
        if segment.is_empty() {
            return (vec![prefix], at);
        }
        if segment != "self" {
            prefix.push(segment);
        }
        let next: String = chars[at..chars.len().min(at + 2)].iter().collect();
        if next != "::" {
            return (vec![prefix], at);
        }
        at += 2;
    }
}

#[test]
fn rooms_import_only_what_the_table_allows() {
    let rules = rules();
    let rows: BTreeMap<&str, &BTreeSet<String>> = rules
        .iter()
        .map(|(room, allowed)| (room.as_str(), allowed))
        .collect();
    let mut listed = BTreeSet::new();
    for (room, allowed) in &rules {
        for other in allowed {
            assert!(
                listed.contains(other),
                "docs/ARCHITECTURE.md: `{room}` may import `{other}`, which is not listed before \
                 it: rows must go from the lowest room to the highest"
            );
        }
        listed.insert(room.clone());
    }

    let files = all_sources();
    let re_exported = root_names(&files);
    let mut violations = Vec::new();
    for (module, code) in &files {
        let Some(room) = module.first() else {
            continue;
        };
        let allowed = rows.get(room.as_str()).unwrap_or_else(|| {
            panic!("src/{room}: a room docs/ARCHITECTURE.md does not place; add its row")
        });
        for reference in references(module, code) {
            let target = match reference.as_slice() {
                [name] => match re_exported.get(name) {
                    Some(target) => target,
                    None => continue,
                },
                [target, ..] => target,
                [] => continue,
            };
            if target != room && !allowed.contains(target) && rows.contains_key(target.as_str()) {
                violations.push(format!("{}: imports crate::{target}", module.join("::")));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "imports the table in docs/ARCHITECTURE.md does not allow:\n{}",
        violations.join("\n")
    );
}

#[test]
fn sibling_files_never_import_each_other_both_ways() {
    let mut edges: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for (module, code) in all_sources() {
        for mut reference in references(&module, &code) {
            // Items (`Foo`) are not files: keep the modules of the path.
            while reference
                .last()
                .is_some_and(|segment| segment.starts_with(|c: char| c.is_ascii_uppercase()))
            {
                reference.pop();
            }
            // The siblings involved: the first segments after the paths'
            // common prefix.
            let common = module
                .iter()
                .zip(&reference)
                .take_while(|(a, b)| a == b)
                .count();
            if common < module.len() && common < reference.len() {
                edges.insert((module[..=common].to_vec(), reference[..=common].to_vec()));
            }
        }
    }
    let cycles: Vec<String> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| format!("{} <-> {}", a.join("::"), b.join("::")))
        .collect();
    assert!(
        cycles.is_empty(),
        "modules that import each other (docs/ARCHITECTURE.md, import rules):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_reader_finds_imports_through_groups_and_super() {
    let code = code_of(
        "use crate::a::{b::C, d};\n// crate::ignored\nuse super::e::F;\nlet s = \"crate::no\";",
    );
    let found = references(&["x".into(), "y".into()], &code);
    let path = |segments: &[&str]| segments.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![
            path(&["a", "b", "C"]),
            path(&["a", "d"]),
            path(&["x", "e", "F"]),
        ]
    );
}
