//! The committed header, `include/syncmq.h`, is what cbindgen makes of
//! the sources now: this test regenerates it (with the cbindgen the lock
//! file pins, and `cbindgen.toml`) and fails when it differs. With
//! `SYNCMQ_WRITE_HEADER=1` it writes the new header instead.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn the_committed_header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .unwrap();
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = dir.join("include/syncmq.h");
    if std::env::var_os("SYNCMQ_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        println!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date: regenerate it with\n  \
         SYNCMQ_WRITE_HEADER=1 cargo test -p syncmq-ffi --test header\n\
         (or `cbindgen --config ffi/cbindgen.toml --output ffi/include/syncmq.h ffi`) \
         and commit it.",
        path.display()
    );
}
