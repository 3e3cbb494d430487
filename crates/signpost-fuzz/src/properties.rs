//! SAP cockpit's properties export of a destination, as `signpost import` reads it.

use signpost::cli::parse_properties;

/// Any text as a properties file: what it accepts is a non-empty object of strings with no
/// nameless property, and written back with Java's escapes it reads back equal.
pub fn properties_import(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = parse_properties(text) else {
        return;
    };
    let map = value.as_object().expect("properties are an object");
    assert!(!map.is_empty());
    let mut written = String::new();
    for (k, v) in map {
        assert!(!k.is_empty(), "a property without a name");
        let v = v.as_str().expect("property values are strings");
        written.push_str(&escape(k));
        written.push('=');
        written.push_str(&escape(v));
        written.push('\n');
    }
    let back = parse_properties(&written).unwrap_or_else(|e| panic!("{written:?}: {e}"));
    assert_eq!(back, value, "written as {written:?}");
}

/// Java's escapes: the separators, comment marks and backslash by a backslash; whitespace and
/// other control characters as `\uXXXX` (each is in the Basic Multilingual Plane).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_whitespace() || c.is_control() => {
                if let Ok(unit) = u16::try_from(u32::from(c)) {
                    out.push_str(&format!("\\u{unit:04x}"));
                } else {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_read_back() {
        let text = format!("{}={}\n", escape("a b=c:\\#"), escape(" x\u{2028}\t\r\n"));
        let v = parse_properties(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["a b=c:\\#"], " x\u{2028}\t\r\n");
    }
}
