//! The crate's layering, kept by a test (docs/architecture.md draws it). Every top-level
//! module of `src/` has a layer; a module may import its own layer's modules and those
//! below, never one above, and no two top-level modules may import each other. The
//! imports are read from the source (`use` declarations and `crate::…`/`super::…` paths
//! in code; test modules aside), so a wrong import fails here, naming the file and the
//! path, before anyone reviews it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A new top-level module must be placed here.
const LAYERS: &[(&str, &[&str])] = &[
    ("time and process", &["clock", "telemetry", "runtime"]),
    ("pure domain and command grammar", &["domain", "command"]),
    ("settings and metrics", &["config", "metrics"]),
    ("chat: message model, platforms, links", &["chat"]),
    ("store: all SQL", &["store"]),
    (
        "queues' write side, shared parts, views",
        &["inbox", "outbox", "shared", "views", "work"],
    ),
    ("executor", &["executor"]),
    ("bot: handlers", &["bot"]),
    ("workers", &["workers"]),
    ("HTTP", &["server"]),
    ("wiring and entry points", &["app", "cli", "demo", "main", "lib"]),
];

/// Crates that only their platform's folder may use.
const PLATFORM_CRATES: &[(&str, &str)] = &[("slack_morphism", "chat/slack"), ("serenity", "chat/discord")];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    /// The file, relative to `src/`.
    file: String,
    line: usize,
    /// The path as written, resolved to start at the crate (`crate::store::Store`).
    path: String,
    /// The top-level module it names.
    target: String,
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The module path of a file: `bot/tickets.rs` → `[bot, tickets]`, `bot/mod.rs` → `[bot]`.
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        return vec![];
    }
    parts
}

/// The text with comments, string and char literals blanked out (lines kept).
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_char(b.get(i.wrapping_sub(1))) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            while j < b.len() && b[j..].iter().take(close.len()).ne(close.iter()) {
                j += 1;
            }
            let end = (j + close.len()).min(b.len());
            out.extend(b[i..end].iter().map(|c| blank(*c)));
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && next.is_some() && b.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            // '\n', '\u{…}'
            let mut j = i + 2;
            while j < b.len() && b[j] != '\'' {
                j += 1;
            }
            out.extend(b[i..=j.min(b.len() - 1)].iter().map(|c| blank(*c)));
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The text with every `#[cfg(test)]` item blanked out (lines kept).
fn without_tests(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let text: String = out.iter().collect();
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]").map(|p| p + from) {
        let start = text[..at].chars().count();
        let rest: Vec<char> = text[at..].chars().collect();
        // The item ends at its `;` or at the brace closing its first `{`.
        let mut depth = 0;
        let mut end = rest.len();
        for (k, c) in rest.iter().enumerate() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        for c in out.iter_mut().skip(start).take(end) {
            if *c != '\n' {
                *c = ' ';
            }
        }
        from = at + rest[..end].iter().collect::<String>().len();
    }
    out.into_iter().collect()
}

/// Expands a `use` tree (`crate::{a, b::{c, d}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    // White space only where it separates two words (`Store as S`).
    let words: Vec<char> = tree.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect();
    let tree: String = words
        .iter()
        .enumerate()
        .filter(|(k, c)| **c != ' ' || (ident_char(words.get(k.wrapping_sub(1))) && ident_char(words.get(k + 1))))
        .map(|(_, c)| *c)
        .collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |e| format!("{prefix}{e}")))
        .collect()
}

/// Resolves a path as written in `module` to a path from the crate root, if it is one.
fn resolve(module: &[String], path: &str) -> Option<Vec<String>> {
    let segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String>;
    let mut rest = &segs[..];
    match segs.first() {
        Some(&"crate") => {
            base = vec![];
            rest = &segs[1..];
        }
        Some(&"super") => {
            base = module.to_vec();
            while rest.first() == Some(&"super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        Some(&"self") => {
            base = module.to_vec();
            rest = &segs[1..];
        }
        _ => return None,
    }
    base.extend(rest.iter().map(|s| s.to_string()));
    Some(base)
}

/// Every import of a file (its code, tests aside) that names another top-level module.
fn imports_of(rel: &str, src: &str) -> Vec<Import> {
    let module = module_path(rel);
    let own = module.first().cloned().unwrap_or_default();
    let code = without_tests(&code_only(src));
    let line_of = |offset: usize| code[..offset].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut push = |offset: usize, written: &str| {
        if let Some(resolved) = resolve(&module, written) {
            if let Some(target) = resolved.first().filter(|t| **t != own && !t.is_empty()) {
                found.push(Import {
                    file: rel.to_string(),
                    line: line_of(offset),
                    path: format!("crate::{}", resolved.join("::")),
                    target: target.clone(),
                });
            }
        }
    };
    // `use` declarations, with their trees.
    let mut in_use = vec![false; code.len() + 1];
    let mut search = 0;
    while let Some(p) = code[search..].find("use ").map(|p| p + search) {
        search = p + 4;
        let before = code[..p].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = code[p..].find(';').map(|e| e + p) else {
            break;
        };
        let tree = &code[p + 4..end];
        for path in expand(tree) {
            let path = path.split(' ').next().unwrap_or_default().trim_end_matches("::*");
            push(p, path.trim_end_matches("::self"));
        }
        in_use[p..end].iter_mut().for_each(|b| *b = true);
        search = end;
    }
    // Paths in code: `crate::x`, `super::x`, `super::super::x`.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(p) = code[at..].find(start).map(|q| q + at) {
            at = p + start.len();
            if in_use[p]
                || (p > 0 && (bytes[p - 1].is_ascii_alphanumeric() || bytes[p - 1] == b'_' || bytes[p - 1] == b':'))
            {
                continue;
            }
            let end = code[p..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| e + p);
            push(p, code[p..end].trim_end_matches(':'));
        }
    }
    found
}

/// Where each platform crate is used outside its folder.
fn platform_leaks(rel: &str, src: &str) -> Vec<String> {
    let code = without_tests(&code_only(src));
    PLATFORM_CRATES
        .iter()
        .filter(|(_, home)| !rel.starts_with(home))
        .filter_map(|(krate, home)| {
            code.lines()
                .position(|l| l.contains(&format!("{krate}::")))
                .map(|i| format!("src/{rel}:{}: uses {krate}, which only src/{home}/ may use", i + 1))
        })
        .collect()
}

/// The problems of a crate given as (file relative to `src/`, source) pairs.
fn problems(files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut edges: BTreeMap<(String, String), Import> = BTreeMap::new();
    let mut modules = BTreeSet::new();
    for (rel, src) in files {
        let module = module_path(rel);
        let own = module
            .first()
            .cloned()
            .unwrap_or_else(|| rel.trim_end_matches(".rs").to_string());
        modules.insert(own.clone());
        out.extend(platform_leaks(rel, src));
        let Some(own_layer) = layer_of(&own) else {
            continue;
        };
        for import in imports_of(rel, src) {
            match layer_of(&import.target) {
                None => {}
                Some(l) if l > own_layer => out.push(format!(
                    "src/{}:{}: `{}` imports {} (layer {l}, {}) from layer {own_layer} ({}): a layer imports only those below it",
                    import.file, import.line, own, import.path, LAYERS[l].0, LAYERS[own_layer].0
                )),
                Some(_) => {}
            }
            edges.entry((own.clone(), import.target.clone())).or_insert(import);
        }
    }
    for m in &modules {
        if layer_of(m).is_none() {
            out.push(format!("src/{m}: the top-level module `{m}` has no layer: place it in LAYERS (tests/layering.rs) and docs/architecture.md"));
        }
    }
    for ((a, b), there) in &edges {
        if a < b {
            if let Some(back) = edges.get(&(b.clone(), a.clone())) {
                out.push(format!(
                    "`{a}` and `{b}` import each other: src/{}:{} imports {}, and src/{}:{} imports {}",
                    there.file, there.line, there.path, back.file, back.line, back.path
                ));
            }
        }
    }
    out
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().replace('\\', "/");
            // A file that is a test module as a whole (`#[cfg(test)] mod tests;`).
            if rel.ends_with("/tests.rs") {
                continue;
            }
            let src = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((rel, src));
        }
    }
}

#[test]
fn every_module_imports_only_its_own_layer_and_those_below_and_no_two_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 50, "read {} files of src/", files.len());
    let problems = problems(&files);
    assert!(
        problems.is_empty(),
        "{} layering problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Lines of logic a source file may have (test modules, comments and blank lines aside).
const MAX_FILE_LINES: usize = 650;
/// Lines a function may span, from its signature to its closing brace.
const MAX_FN_LINES: usize = 125;

/// Files and functions past the limits: a file past them is cut by responsibility.
fn size_problems(rel: &str, src: &str) -> Vec<String> {
    let code = without_tests(&code_only(src));
    let mut out = Vec::new();
    let logic = code.lines().filter(|l| !l.trim().is_empty()).count();
    if logic > MAX_FILE_LINES {
        out.push(format!(
            "src/{rel}: {logic} lines of logic (at most {MAX_FILE_LINES}): cut it by responsibility"
        ));
    }
    let lines: Vec<&str> = code.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let is_fn = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(crate) async fn ",
            "pub(super) fn ",
            "pub(super) async fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if !is_fn || trimmed.ends_with(';') || trimmed.ends_with('}') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| l.trim_end() == close) {
            let span = end + 2;
            if span > MAX_FN_LINES {
                let name = trimmed
                    .split("fn ")
                    .nth(1)
                    .and_then(|r| r.split(['(', '<']).next())
                    .unwrap_or("?");
                out.push(format!(
                    "src/{rel}:{}: fn {name} spans {span} lines (at most {MAX_FN_LINES})",
                    i + 1
                ));
            }
        }
    }
    out
}

#[test]
fn no_file_or_function_is_too_long_to_hold_in_ones_head() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let problems: Vec<String> = files.iter().flat_map(|(rel, src)| size_problems(rel, src)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_long_function_and_a_long_file_are_named() {
    let body = "    let x = 1;\n".repeat(130);
    let src = format!(
        "pub fn short() {{}}\n\nasync fn long(a: i64) {{\n{body}}}\n#[cfg(test)]\nmod tests {{\n{}}}\n",
        "    fn t() {}\n".repeat(700)
    );
    assert_eq!(
        size_problems("bot/x.rs", &src),
        ["src/bot/x.rs:3: fn long spans 132 lines (at most 125)"]
    );
    let big = "const A: i64 = 1;\n".repeat(651);
    assert_eq!(
        size_problems("bot/y.rs", &big),
        ["src/bot/y.rs: 651 lines of logic (at most 650): cut it by responsibility"]
    );
}

fn file(rel: &str, src: &str) -> (String, String) {
    (rel.to_string(), src.to_string())
}

#[test]
fn an_import_of_a_layer_above_is_named_with_its_file_and_path() {
    let files = [
        file("store/tickets.rs", "use crate::domain::Ticket;\nuse crate::{chat::Message, executor::{Run as R, progress}};\n"),
        file("executor/mod.rs", "fn f() { let _ = super::store::get(); }\n"),
        file("domain/flow.rs", "// crate::config::Span in a comment\nconst S: &str = \"crate::bot\";\nfn g() -> crate::config::Span { todo!() }\n"),
    ];
    let found = problems(&files);
    assert_eq!(
        found,
        [
            "src/store/tickets.rs:2: `store` imports crate::executor::Run (layer 6, executor) from layer 4 (store: all SQL): a layer imports only those below it",
            "src/store/tickets.rs:2: `store` imports crate::executor::progress (layer 6, executor) from layer 4 (store: all SQL): a layer imports only those below it",
            "src/domain/flow.rs:3: `domain` imports crate::config::Span (layer 2, settings and metrics) from layer 1 (pure domain and command grammar): a layer imports only those below it",
            "`executor` and `store` import each other: src/executor/mod.rs:1 imports crate::store::get, and src/store/tickets.rs:2 imports crate::executor::Run",
        ]
    );
}

#[test]
fn test_modules_are_not_imports_and_a_module_without_a_layer_is_refused() {
    let files = [
        file(
            "store/mod.rs",
            "pub fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::bot::Bot;\n    fn t() { crate::server::x(); }\n}\nfn after() { crate::domain::y(); }\n",
        ),
        file("gadgets/mod.rs", "pub fn f() {}\n"),
        file("server/slack.rs", "use slack_morphism::prelude::*;\n"),
    ];
    let found = problems(&files);
    assert_eq!(
        found,
        [
            "src/server/slack.rs:1: uses slack_morphism, which only src/chat/slack/ may use",
            "src/gadgets: the top-level module `gadgets` has no layer: place it in LAYERS (tests/layering.rs) and docs/architecture.md",
        ]
    );
    assert_eq!(
        imports_of("store/mod.rs", &files[0].1),
        [Import {
            file: "store/mod.rs".into(),
            line: 7,
            path: "crate::domain::y".into(),
            target: "domain".into()
        }]
    );
}
