//! Configuration files: one serde struct read from a JSON, TOML or YAML
//! file, the format chosen by the file's extension (feature `config`).
//!
//! Every config type that a file can hold loads through [`load`] (its
//! `from_path` then validates what it read), so that the `syncmq` CLI and a
//! daemon of the library's user read the same files the same way, and a
//! mistake reads the same: the path, the format, and serde's own words
//! (`unknown field `subscriberz`, expected one of ...`, with a line when
//! the format has lines).

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A config file's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Toml,
    Yaml,
}

/// The extensions a config file may have, as errors list them.
const ACCEPTED: &str = ".json, .toml, .yaml or .yml";

impl Format {
    /// The format of `path`, from its extension (in any case).
    fn of(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str());
        match ext.map(str::to_ascii_lowercase).as_deref() {
            Some("json") => Ok(Format::Json),
            Some("toml") => Ok(Format::Toml),
            Some("yaml" | "yml") => Ok(Format::Yaml),
            Some(other) => Err(Error::invalid(
                path.display().to_string(),
                format!("a config file's extension is {ACCEPTED}, not .{other}"),
            )),
            None => Err(Error::invalid(
                path.display().to_string(),
                format!("a config file's extension is {ACCEPTED}, and this one has none"),
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
        })
    }
}

/// Reads `path` as a `T` in the format its extension names.
///
/// # Errors
///
/// [`Error::InvalidArgument`] named by the path for an extension that is
/// not one of the accepted ones (saying which are) or for a file that does
/// not parse as a `T` (saying the format and serde's reason: an unknown
/// field is named); [`Error::Io`] naming the path when it cannot be read.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let format = Format::of(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("read the config file {}", path.display()), e))?;
    let parsed = match format {
        Format::Json => serde_json::from_str(&text).map_err(|e| e.to_string()),
        Format::Toml => toml::from_str(&text).map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml_ng::from_str(&text).map_err(|e| e.to_string()),
    };
    parsed.map_err(|reason| {
        // TOML's errors span lines (a snippet of the file); one line reads
        // better in a log or on a terminal.
        let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
        Error::invalid(
            path.display().to_string(),
            format!("not a valid {format} config: {reason}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Small {
        name: String,
        #[serde(default)]
        count: u32,
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn each_format_is_chosen_by_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        let want = Small {
            name: "a".into(),
            count: 2,
        };
        for (name, text) in [
            ("s.json", r#"{"name": "a", "count": 2}"#),
            ("s.toml", "name = \"a\"\ncount = 2\n"),
            ("s.yaml", "name: a\ncount: 2\n"),
            ("s.yml", "name: a\ncount: 2\n"),
            ("S.JSON", r#"{"name": "a", "count": 2}"#),
        ] {
            let path = write(dir.path(), name, text);
            assert_eq!(load::<Small>(&path).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn errors_name_the_file_the_format_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let ini = write(dir.path(), "s.ini", "name = a");
        let err = load::<Small>(&ini).unwrap_err().to_string();
        assert!(err.contains("s.ini"), "{err}");
        assert!(err.contains(".ini"), "{err}");
        assert!(err.contains(ACCEPTED), "{err}");
        let bare = write(dir.path(), "config", "name = a");
        let err = load::<Small>(&bare).unwrap_err().to_string();
        assert!(err.contains("has none"), "{err}");

        for (name, text) in [
            ("u.json", r#"{"name": "a", "cuont": 2}"#),
            ("u.toml", "name = \"a\"\ncuont = 2\n"),
            ("u.yaml", "name: a\ncuont: 2\n"),
        ] {
            let path = write(dir.path(), name, text);
            let err = load::<Small>(&path).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
            let err = err.to_string();
            assert!(err.contains(name), "{err}");
            assert!(err.contains("cuont"), "{name}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let bad_toml = write(dir.path(), "b.toml", "name = \n");
        let err = load::<Small>(&bad_toml).unwrap_err().to_string();
        assert!(err.contains("not a valid TOML config"), "{err}");

        let missing = dir.path().join("missing.yaml");
        match load::<Small>(&missing) {
            Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("missing.yaml"), "{e}"),
            other => panic!("expected Io, got {other:?}"),
        }
    }
}
