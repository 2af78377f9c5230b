//! The libpq settings of a PostgreSQL connection string that the `postgres`
//! crate does not read: `sslmode` beyond `disable`/`prefer`/`require`
//! (`allow`, `verify-ca`, `verify-full`) and `sslrootcert`.
//!
//! The `postgres` crate's parser refuses those values and that key, so a
//! standard `postgres://...?sslmode=verify-full` URL would not connect.
//! They are taken out here (each replaced by a harmless `sslmode=prefer`,
//! which the store then overrides), in both forms of the string, and the
//! rest is left to the crate's own parser. Errors name the setting and
//! never repeat the string, which may hold a password.

use crate::error::{Error, Result};

/// libpq's `sslmode`, with what each value means there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server wants it (libpq tries plain first; the crate can
    /// only ask for TLS first, so this is `Prefer`).
    Allow,
    /// TLS if the server offers it, its certificate not checked.
    Prefer,
    /// TLS or nothing; the certificate checked against the CA only when
    /// one is given (then as `VerifyCa`).
    Require,
    /// TLS, the certificate signed by a trusted CA, any host name.
    VerifyCa,
    /// TLS, the certificate signed by a trusted CA and valid for the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::invalid(
                    "params",
                    format!(
                        "sslmode `{other}`: expected disable, allow, prefer, require, \
                         verify-ca or verify-full"
                    ),
                ))
            }
        })
    }
}

/// A connection string with the libpq-only settings taken out.
#[derive(Debug, Default)]
pub(crate) struct LibpqSettings {
    /// The string for the `postgres` crate's parser.
    pub(crate) rest: String,
    /// `sslmode`, when the string sets it.
    pub(crate) ssl_mode: Option<SslMode>,
    /// `sslrootcert`: the file of the CA certificates to trust.
    pub(crate) root_cert: Option<String>,
}

/// A `key=value` found in a connection string: where the whole pair is
/// (byte range) and its value, unescaped.
struct Pair {
    key: String,
    value: String,
    range: std::ops::Range<usize>,
}

/// Takes `sslmode` and `sslrootcert` out of `params` (a `postgres://` or
/// `postgresql://` URL, or `key=value` pairs).
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming `params` for an `sslmode` libpq does
/// not know. A string this cannot read is left whole for the `postgres`
/// crate, whose error says what is wrong.
pub(crate) fn take_libpq_settings(params: &str) -> Result<LibpqSettings> {
    let pairs = if is_url(params) {
        url_pairs(params)
    } else {
        keyword_pairs(params)
    };
    let mut settings = LibpqSettings::default();
    let mut rest = params.to_string();
    // From the end, so that the ranges before stay valid; the last of a
    // key counts, as in libpq.
    for pair in pairs.iter().rev() {
        match pair.key.as_str() {
            "sslmode" => {
                if settings.ssl_mode.is_none() {
                    settings.ssl_mode = Some(SslMode::parse(&pair.value)?);
                }
            }
            "sslrootcert" => {
                if settings.root_cert.is_none() {
                    settings.root_cert = Some(pair.value.clone());
                }
            }
            _ => continue,
        }
        rest.replace_range(pair.range.clone(), "sslmode=prefer");
    }
    settings.rest = rest;
    Ok(settings)
}

fn is_url(params: &str) -> bool {
    params.starts_with("postgres://") || params.starts_with("postgresql://")
}

/// The query's pairs of a URL, as the `postgres` crate reads them: the
/// query starts at the first `?` after the credentials (which end at the
/// first `@`), pairs are `&`-separated and percent-encoded.
fn url_pairs(url: &str) -> Vec<Pair> {
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let Some(query) = url[after_credentials..]
        .find('?')
        .map(|q| after_credentials + q + 1)
    else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    let mut start = query;
    for part in url[query..].split('&') {
        let end = start + part.len();
        if let Some((key, value)) = part.split_once('=') {
            pairs.push(Pair {
                key: percent_decoded(key),
                value: percent_decoded(value),
                range: start..end,
            });
        }
        start = end + 1;
    }
    pairs
}

/// `%XX` escapes decoded; a malformed one is kept as it is (the `postgres`
/// crate reports it, for the keys it reads).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pairs of a `key=value` string, as the `postgres` crate reads them:
/// whitespace between pairs and around `=`, a value either up to the next
/// whitespace or in single quotes, `\` escaping the next character. Stops
/// at the first thing it cannot read (the crate then says what).
fn keyword_pairs(params: &str) -> Vec<Pair> {
    let mut pairs = Vec::new();
    let mut chars = params.char_indices().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            return pairs;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        skip_ws(&mut chars);
        if chars.next_if(|(_, c)| *c == '=').is_none() || key.is_empty() {
            return pairs;
        }
        skip_ws(&mut chars);
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        let mut end = params.len();
        let mut closed = !quoted;
        while let Some(&(i, c)) = chars.peek() {
            if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                if quoted {
                    chars.next();
                    closed = true;
                    end = i + 1;
                } else {
                    end = i;
                }
                break;
            }
            chars.next();
            if c == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        if !closed {
            return pairs;
        }
        pairs.push(Pair {
            key,
            value,
            range: start..end,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(params: &str) -> LibpqSettings {
        take_libpq_settings(params).unwrap()
    }

    #[test]
    fn libpq_settings_come_out_of_a_url() {
        let s = settings(
            "postgres://app:p%3Fw@db.internal:5433/orders?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(s.ssl_mode, Some(SslMode::VerifyFull));
        assert_eq!(s.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            s.rest,
            "postgres://app:p%3Fw@db.internal:5433/orders?sslmode=prefer&connect_timeout=5&sslmode=prefer"
        );
        let config: postgres::Config = s.rest.parse().unwrap();
        assert_eq!(config.get_dbname(), Some("orders"));
    }

    #[test]
    fn libpq_settings_come_out_of_key_value_pairs() {
        let s = settings(
            "host=db user=app password='a b sslmode=disable' sslmode = verify-ca sslrootcert='/my certs/ca.pem'",
        );
        assert_eq!(s.ssl_mode, Some(SslMode::VerifyCa));
        assert_eq!(s.root_cert.as_deref(), Some("/my certs/ca.pem"));
        let config: postgres::Config = s.rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"a b sslmode=disable"[..]));
        assert_eq!(config.get_user(), Some("app"));
    }

    #[test]
    fn a_string_without_them_is_left_alone() {
        for params in [
            "host=127.0.0.1 user=postgres dbname=test",
            "postgresql://localhost/test",
            "",
        ] {
            let s = settings(params);
            assert_eq!(s.rest, params);
            assert_eq!(s.ssl_mode, None);
            assert_eq!(s.root_cert, None);
        }
        assert_eq!(settings("sslmode=require").ssl_mode, Some(SslMode::Require));
        assert_eq!(
            settings("postgres://h/d?sslmode=disable").ssl_mode,
            Some(SslMode::Disable)
        );
    }

    #[test]
    fn an_unknown_sslmode_is_refused_by_name() {
        let err = take_libpq_settings("host=h password=secret sslmode=strict").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("params") && text.contains("sslmode `strict`"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }
}
