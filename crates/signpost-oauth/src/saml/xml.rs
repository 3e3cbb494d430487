//! Exclusive XML Canonicalization written directly (see the module docs of `saml`): the
//! element writer, text and attribute escaping, and the characters XML 1.0 can carry.

/// Whether XML 1.0 can carry `c` at all (its `Char` production).
pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// Writes elements directly in exclusive canonical form (see the module docs). Callers pass
/// unqualified attribute names only and declare at most one namespace per element, on the first
/// element that uses its prefix; all text must have passed `assertion::check_text`.
#[derive(Default)]
pub(super) struct Writer {
    pub(super) out: String,
}

impl Writer {
    pub(super) fn open(&mut self, name: &str, xmlns: Option<(&str, &str)>, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        if let Some((prefix, uri)) = xmlns {
            self.out.push_str(" xmlns:");
            self.out.push_str(prefix);
            self.out.push_str("=\"");
            escape_attr_into(&mut self.out, uri);
            self.out.push('"');
        }
        let mut sorted: Vec<&(&str, &str)> = attrs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in sorted {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            escape_attr_into(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('>');
    }

    pub(super) fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// An element holding only text (or nothing: canonical form has no empty-element tags).
    pub(super) fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, None, attrs);
        escape_text_into(&mut self.out, text);
        self.close(name);
    }
}

/// Text node escaping of canonical XML.
pub(super) fn escape_text_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// Attribute value escaping of canonical XML (whitespace other than the space as character
/// references, so that attribute-value normalisation keeps it).
pub(super) fn escape_attr_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}
