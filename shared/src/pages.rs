//! What every page a customer sees shares: the one stylesheet (`shared/assets/pages.css`),
//! the favicon, and HTML escaping for the pages built without a template engine (the
//! unsubscribe page, the dev storefront's examples).

/// The pages' stylesheet, compiled in: the functions serve no files.
pub const PAGES_CSS: &str = include_str!("../assets/pages.css");

/// An inline SVG favicon, so a browser asks for no `/favicon.ico` (a 404 here).
pub const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 32 32%22%3E%3Crect width=%2232%22 height=%2232%22 rx=%227%22 fill=%22%23635bff%22/%3E%3Cpath d=%22M9 17l5 5 9-11%22 fill=%22none%22 stroke=%22white%22 stroke-width=%224%22 stroke-linecap=%22round%22 stroke-linejoin=%22round%22/%3E%3C/svg%3E";

/// Text for HTML, attribute values included.
#[must_use]
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_what_html_and_attributes_read() {
        assert_eq!(
            super::escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }
}
