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
                let close = template[i..]
                    .find('}')
                    .ok_or_else(|| format!("`${{` at byte {i} is never closed with `}}`"))?;
                let inner = &template[i + 2..i + close];
                let name = inner.split_once(":-").map_or(inner, |(name, _)| name);
                if !is_name(name) {
                    return Err(format!(
                        "`${{{inner}}}` does not start with a variable name \
                         (letters, digits and `_`, optionally followed by `:-default`)"
                    ));
                }
                i += close + 1;
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
    }
}
