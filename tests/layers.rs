//! The crate's layers, lowest first, as `src/lib.rs` documents them: a
//! module may use the modules before it in [`LAYERS`], never one after it.
//! This test reads every source file and fails on a `crate::` path that
//! reaches up, so the order in the docs stays the order in the code.
#![allow(clippy::unwrap_used)] // a test or example fails loudly on purpose

use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first. A name is a top-level module of `src/` (a file
/// `src/x.rs` or a folder `src/x/`).
const LAYERS: &[&str] = &[
    "error",
    "thread",
    "metrics",
    "millis",
    "fjall_workers",
    "tls",
    "config_file",
    "message",
    "json",
    "receipt",
    "reply",
    "waiter",
    "queue",
    "rabbitmq",
    "server",
    "channel",
    "sink",
    "outbox",
    "block",
    "prelude",
];

#[test]
fn no_module_uses_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (rank, layer) in LAYERS.iter().enumerate() {
        let files = files_of(&src, layer);
        assert!(!files.is_empty(), "layer {layer} has no source files");
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            for (line_no, used) in crate_uses(&text) {
                match LAYERS.iter().position(|l| *l == used) {
                    Some(used_rank) if used_rank > rank => violations.push(format!(
                        "{}:{line_no}: {layer} uses crate::{used}, a layer above it",
                        file.strip_prefix(&src).unwrap().display()
                    )),
                    // Below: fine. Not a layer: an item re-exported at the
                    // crate root (`crate::Error`) or a macro.
                    Some(_) | None => {}
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer order broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
        if is_module && name != "lib" && name != "bin" && !LAYERS.contains(&name.as_str()) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "modules missing from LAYERS: {missing:?}"
    );
}

/// The sources of top-level module `layer`.
fn files_of(src: &Path, layer: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src.join(format!("{layer}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut dirs = vec![src.join(layer)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The top-level module named by every `crate::` path in `text`, with its
/// line number, skipping comments (doc links may point anywhere).
fn crate_uses(text: &str) -> Vec<(usize, String)> {
    let mut uses = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::X, b, c::{..}}`: the names at depth 1;
                // a group spanning lines is read from the rest of the text.
                let start = text.lines().take(i).map(|l| l.len() + 1).sum::<usize>()
                    + (line.len() - code.len())
                    + (code.len() - group.len());
                for name in group_heads(&text[start..]) {
                    uses.push((i + 1, name));
                }
            } else {
                uses.push((i + 1, ident(rest)));
            }
        }
    }
    uses
}

/// The first path segment of every item in a `{..}` group (text starts
/// just after the `{`).
fn group_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 1;
    let mut expect_head = true;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if expect_head && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&text[at..]));
                expect_head = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}
