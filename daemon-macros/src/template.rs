//! Compile-time check of the `$VAR` / `${VAR}` / `${VAR:-default}` syntax in path strings.
//! The expansion itself happens at start-up, in `daemon_runtime`; this only catches a
//! malformed template early, so that the mistake shows up in the editor, not in production.

/// Returns a description of the first syntax mistake in `template`, if any.
pub(crate) fn check(template: &str) -> Result<(), String> {
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'{') => {
                let close = closing_brace(&bytes[i + 2..])
                    .ok_or_else(|| format!("`${{` at byte {i} is never closed with `}}`"))?;
                let inner = &template[i + 2..i + 2 + close];
                let (name, default) = match inner.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (inner, None),
                };
                if !is_name(name) {
                    return Err(format!(
                        "`${{{inner}}}` does not start with a variable name \
                         (letters, digits and `_`, optionally followed by `:-default`)"
                    ));
                }
                // A default is expanded in turn at start-up: `${A:-${B:-/run}}`.
                if let Some(default) = default {
                    check(default)?;
                }
                i += 2 + close + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            _ => {
                return Err(format!(
                    "`$` at byte {i} is not followed by a variable name or `{{`; \
                     write `$$` for a literal `$`"
                ))
            }
        }
    }
    Ok(())
}

/// The position of the `}` that closes a `${` whose inside starts `bytes`, counting the
/// `${` nested in it (as the runtime's expansion does).
fn closing_brace(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_the_documented_forms() {
        for ok in [
            "/run/x.pid",
            "$HOME/x",
            "${HOME}/x",
            "${TMPDIR:-/tmp}/x",
            "a$$b",
            "${A:-}",
            "${A:-${B}}/x",
            "${A:-$B}",
            "${A:-${B:-/run}}",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_the_mistake() {
        assert!(check("${HOME").unwrap_err().contains("never closed"));
        assert!(check("${}").unwrap_err().contains("variable name"));
        assert!(check("${1X}").unwrap_err().contains("variable name"));
        assert!(check("/x/$").unwrap_err().contains("`$$`"));
        assert!(check("/x/$-").unwrap_err().contains("`$$`"));
        assert!(check("${A:-${B}").unwrap_err().contains("never closed"));
        assert!(check("${A:-${1}}").unwrap_err().contains("variable name"));
    }
}
