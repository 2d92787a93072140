//! openapi.yaml and the server's router describe the same routes.
//!
//! The served routes are read from the router source in `src/` (`.route("PATH", get(a).post(b))`
//! calls, and where each module's `router()` is merged or nested), so this runs without a server
//! or a database. It compares (METHOD, path) pairs both ways and prints every difference.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// `("GET", "/v1/assistants/{assistant_id}")`
type Route = (String, String);

const HTTP_METHODS: &[&str] = &[
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// Calls that can appear in a method-router expression without adding a method.
const NOT_METHODS: &[&str] = &["layer", "route_layer", "with_state", "boxed"];

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (served, unmounted) = served_routes(&root.join("src"));
    let documented = documented_routes(&root.join("openapi.yaml"));
    assert!(!served.is_empty(), "found no `.route(` calls under src/api");

    let undocumented: Vec<&Route> = served.difference(&documented).collect();
    let unserved: Vec<&Route> = documented.difference(&served).collect();
    let show = |routes: &[&Route]| -> String {
        routes
            .iter()
            .map(|(m, p)| format!("    {m:7} {p}\n"))
            .collect()
    };
    let mut report = String::new();
    for (file, routes) in &unmounted {
        let routes: Vec<&Route> = routes.iter().collect();
        report += &format!(
            "{file} declares routes but its router() is never merged or nested from \
             src/api/mod.rs, so they are not served:\n{}",
            show(&routes)
        );
    }
    if !undocumented.is_empty() {
        report += &format!(
            "served but missing from openapi.yaml ({}):\n{}",
            undocumented.len(),
            show(&undocumented)
        );
    }
    if !unserved.is_empty() {
        report += &format!(
            "documented in openapi.yaml but not served ({}):\n{}",
            unserved.len(),
            show(&unserved)
        );
    }
    println!(
        "{} routes served, {} documented",
        served.len(),
        documented.len()
    );
    assert!(
        report.is_empty(),
        "openapi.yaml and the router disagree:\n{report}"
    );
}

// ----------------------------------------------------------------------------- openapi.yaml

fn documented_routes(spec_path: &Path) -> BTreeSet<Route> {
    let text = fs::read_to_string(spec_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", spec_path.display()));
    let spec: serde_norway::Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", spec_path.display()));
    let paths = spec
        .get("paths")
        .and_then(|p| p.as_mapping())
        .expect("openapi.yaml has a `paths` mapping");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings");
        let item = item
            .as_mapping()
            .unwrap_or_else(|| panic!("paths.{path} is not a mapping"));
        for key in item.keys().filter_map(|k| k.as_str()) {
            if HTTP_METHODS.contains(&key) {
                routes.insert((key.to_uppercase(), path.to_string()));
            }
        }
    }
    routes
}

// ----------------------------------------------------------------------------- router source

/// Every route the router source declares, with the prefix it is mounted under.
///
/// `src/api/mod.rs` is the root: a `.route` there is mounted at the top unless it sits in the
/// `let NAME = ...;` of a router later `.nest("/PREFIX", NAME)`ed (that is how `/v1` is built);
/// `.merge(MODULE::router())` and `.nest("/P", MODULE::router())` pull in `src/api/MODULE.rs`
/// under the prefix in force at that point. Routes declared elsewhere in `src/` (outside
/// `src/api/`) are taken as top-level. Also returns, per file, the routes of modules under
/// `src/api/` that are never mounted.
fn served_routes(src: &Path) -> (BTreeSet<Route>, Vec<(String, BTreeSet<Route>)>) {
    let api = src.join("api");
    let mut routes = BTreeSet::new();
    let mut visited = BTreeSet::new();
    collect(&api, "mod", "", &mut routes, &mut visited);

    // A module that declares routes but is never mounted serves nothing: worth saying.
    let mut unmounted = vec![];
    for file in rust_files(&api) {
        if visited.contains(&module_name(&api, &file)) {
            continue;
        }
        let code = sanitize(&read(&file));
        let declared: BTreeSet<Route> = calls(&code, ".route(")
            .into_iter()
            .flat_map(|at| parse_route(&code, at, "", &file))
            .collect();
        if !declared.is_empty() {
            let name = file
                .strip_prefix(src.parent().unwrap_or(src))
                .unwrap_or(&file);
            unmounted.push((name.display().to_string(), declared));
        }
    }
    // Routers built outside src/api (e.g. a metrics endpoint added in startup) are top-level.
    for file in rust_files(src) {
        if file.starts_with(&api) {
            continue;
        }
        let code = sanitize(&read(&file));
        for at in calls(&code, ".route(") {
            routes.extend(parse_route(&code, at, "", &file));
        }
    }
    (routes, unmounted)
}

fn collect(
    api: &Path,
    module: &str,
    prefix: &str,
    routes: &mut BTreeSet<Route>,
    visited: &mut BTreeSet<String>,
) {
    let file = module_file(api, module);
    visited.insert(module.to_string());
    let code = sanitize(&read(&file));
    let spans = nested_variable_spans(&code);
    let prefix_at = |pos: usize| -> String {
        let inner: String = spans
            .iter()
            .filter(|(start, end, _)| (*start..*end).contains(&pos))
            .map(|(_, _, p)| p.as_str())
            .collect();
        format!("{prefix}{inner}")
    };

    for at in calls(&code, ".route(") {
        routes.extend(parse_route(&code, at, &prefix_at(at), &file));
    }
    for at in calls(&code, ".merge(") {
        let args = split_args(call_args(&code, at));
        if let Some(sub) = args.first().and_then(|a| router_module(a)) {
            collect(api, &sub, &prefix_at(at), routes, visited);
        }
    }
    for at in calls(&code, ".nest(") {
        let args = split_args(call_args(&code, at));
        let (Some(p), Some(target)) = (args.first(), args.get(1)) else {
            continue;
        };
        if let (Some(p), Some(sub)) = (string_literal(p), router_module(target)) {
            collect(api, &sub, &format!("{}{p}", prefix_at(at)), routes, visited);
        }
    }
}

/// For each `.nest("/P", name)` whose router is a local `let name = ...;`, the byte span of
/// that statement and the prefix its routes and merges get.
fn nested_variable_spans(code: &str) -> Vec<(usize, usize, String)> {
    let mut spans = vec![];
    for at in calls(code, ".nest(") {
        let args = split_args(call_args(code, at));
        let (Some(p), Some(name)) = (args.first().and_then(|a| string_literal(a)), args.get(1))
        else {
            continue;
        };
        let name = name.trim();
        if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let binding = format!("let {name} =");
        let Some(start) = code.find(&binding) else {
            continue;
        };
        let end = statement_end(code, start);
        spans.push((start, end, p));
    }
    spans
}

/// `(METHOD, prefix + path)` for each method in the `.route("path", ...)` call at `at`.
fn parse_route(code: &str, at: usize, prefix: &str, file: &Path) -> Vec<Route> {
    let args = split_args(call_args(code, at));
    let where_ = || format!("{} at byte {at}", file.display());
    let path = args
        .first()
        .and_then(|a| string_literal(a))
        .unwrap_or_else(|| panic!("{}: .route( without a string path", where_()));
    let handlers = args
        .get(1)
        .unwrap_or_else(|| panic!("{}: .route({path:?}) without handlers", where_()));
    let mut methods = vec![];
    for name in top_level_calls(handlers) {
        let base = name.strip_suffix("_service").unwrap_or(&name);
        if HTTP_METHODS.contains(&base) {
            methods.push(base.to_uppercase());
        } else if !NOT_METHODS.contains(&name.as_str()) {
            panic!(
                "{}: cannot tell which methods `{name}(..)` serves in .route({path:?}, {}); \
                 teach tests/openapi.rs",
                where_(),
                handlers.trim()
            );
        }
    }
    assert!(
        !methods.is_empty(),
        "{}: no method found in .route({path:?}, {})",
        where_(),
        handlers.trim()
    );
    methods
        .into_iter()
        .map(|m| (m, format!("{prefix}{path}")))
        .collect()
}

// ----------------------------------------------------------------------------- tiny Rust lexing

/// Byte offsets just past each `needle` (which ends in `(`) in code outside string literals.
fn calls(code: &str, needle: &str) -> Vec<usize> {
    let strings = string_spans(code);
    code.match_indices(needle)
        .map(|(i, _)| i)
        .filter(|i| !strings.iter().any(|(s, e)| (*s..*e).contains(i)))
        .map(|i| i + needle.len())
        .collect()
}

/// The text between the `(` that ends just before `open` and its matching `)`.
fn call_args(code: &str, open: usize) -> &str {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => return &code[open..i],
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parentheses after byte {open}");
}

/// Splits call arguments on top-level commas; a trailing comma yields no empty argument.
fn split_args(args: &str) -> Vec<&str> {
    let bytes = args.as_bytes();
    let (mut out, mut depth, mut start, mut i) = (vec![], 0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                out.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if !args[start..].trim().is_empty() {
        out.push(&args[start..]);
    }
    out
}

/// Names of the calls at nesting depth 0: `get(a).post(b).layer(x)` → get, post, layer;
/// `axum::routing::get(a)` → get.
fn top_level_calls(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let (mut names, mut depth, mut i) = (vec![], 0usize, 0usize);
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            i = skip_string(bytes, i) + 1;
            continue;
        }
        if depth == 0 && (c.is_ascii_alphabetic() || c == b'_') {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let ident = &expr[start..i];
            let rest = expr[i..].trim_start();
            if rest.starts_with('(') {
                names.push(ident.to_string());
            }
            continue;
        }
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    names
}

/// `assistants::router()`, `super::runs::router()` → the module's name.
fn router_module(expr: &str) -> Option<String> {
    let expr = expr.trim();
    let before = &expr[..expr.find("::router(")?];
    let module = before.rsplit("::").next()?;
    (!module.is_empty() && module.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .then(|| module.to_string())
}

/// The value of a plain `"..."` literal (no escapes needed for paths).
fn string_literal(expr: &str) -> Option<String> {
    let expr = expr.trim();
    let inner = expr.strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.to_string())
}

/// Index of the closing `"` of the string literal opening at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn string_spans(code: &str) -> Vec<(usize, usize)> {
    let bytes = code.as_bytes();
    let (mut spans, mut i) = (vec![], 0usize);
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let end = skip_string(bytes, i);
            spans.push((i, end));
            i = end;
        }
        i += 1;
    }
    spans
}

/// The end of the statement starting at `start`: its first `;` at nesting depth 0.
fn statement_end(code: &str, start: usize) -> usize {
    let bytes = code.as_bytes();
    let (mut depth, mut i) = (0usize, start);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b';' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// The source with comments, char literals and raw strings blanked out (offsets kept), so that
/// the scanners above only meet code and plain `"..."` strings: documentation mentioning
/// `.route(` is not read as code, and a `'"'` does not open a string.
fn sanitize(src: &str) -> String {
    let bytes = src.as_bytes();
    let mut out = bytes.to_vec();
    let mut blank = |from: usize, to: usize| {
        for b in &mut out[from..to.min(bytes.len())] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let ident_before = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        match bytes[i] {
            b'"' => i = skip_string(bytes, i) + 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
                blank(i, end);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                blank(i, end);
                i = end;
            }
            b'r' if !ident_before && matches!(bytes.get(i + 1), Some(b'"' | b'#')) => {
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                if bytes.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + 2 + hashes;
                let end = src[body..]
                    .find(&close)
                    .map_or(bytes.len(), |n| body + n + close.len());
                blank(i, end);
                i = end;
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => {
                blank(i, i + 3);
                i += 3;
            }
            b'\'' if bytes.get(i + 1) == Some(&b'\\') => {
                // An escape is at least two bytes, so the closing quote is at i + 3 or later.
                let end = src[i + 3..]
                    .find('\'')
                    .map_or(bytes.len(), |n| i + 3 + n + 1);
                blank(i, end);
                i = end;
            }
            _ => i += 1,
        }
    }
    // Only whole ASCII-delimited tokens were blanked, byte by byte, into ASCII spaces; a
    // multi-byte character inside one is blanked entirely, so this is still UTF-8.
    String::from_utf8(out).expect("sanitizing keeps UTF-8")
}

// ----------------------------------------------------------------------------- files

fn module_file(api: &Path, module: &str) -> PathBuf {
    let flat = api.join(format!("{module}.rs"));
    let nested = api.join(module).join("mod.rs");
    if flat.exists() {
        flat
    } else if nested.exists() {
        nested
    } else {
        panic!(
            "router module `{module}` has no file under {}",
            api.display()
        )
    }
}

fn module_name(api: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(api).unwrap();
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() > 1 && parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts.last().cloned().unwrap_or_default()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn the_route_scanner_reads_chained_methods_layers_and_nested_routers() {
    let code = sanitize(
        r#"
        // .route("/commented", get(nope))
        let v1 = Router::new()
            .merge(assistants::router())
            .route("/inline/{id}", get(a).post(b).layer(DefaultBodyLimit::disable()));
        Router::new().nest("/v1", v1).route("/healthz", axum::routing::get(h))
        "#,
    );
    let spans = nested_variable_spans(&code);
    assert_eq!(spans.len(), 1);
    let routes: Vec<Route> = calls(&code, ".route(")
        .into_iter()
        .flat_map(|at| {
            let prefix: String = spans
                .iter()
                .filter(|(s, e, _)| (*s..*e).contains(&at))
                .map(|(_, _, p)| p.clone())
                .collect();
            parse_route(&code, at, &prefix, Path::new("inline"))
        })
        .collect();
    let want: Vec<Route> = [
        ("GET", "/v1/inline/{id}"),
        ("POST", "/v1/inline/{id}"),
        ("GET", "/healthz"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(routes, want);
    assert_eq!(
        router_module(" super::runs::router() "),
        Some("runs".to_string())
    );
}
