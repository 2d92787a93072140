//! The `content-type` a file is served with.

use std::path::Path;

/// The MIME type served for a filename. mime_guess knows most; these are the types OpenAI's
/// supported-files list gives that it guesses differently or not at all.
pub fn content_type(filename: &str) -> String {
    let ext = Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let fixed = match ext.as_str() {
        "c" => Some("text/x-c"),
        "cpp" | "cc" | "cxx" | "h" | "hpp" => Some("text/x-c++"),
        "cs" => Some("text/x-csharp"),
        "go" => Some("text/x-golang"),
        "java" => Some("text/x-java"),
        "md" => Some("text/markdown"),
        "php" => Some("text/x-php"),
        "py" => Some("text/x-python"),
        "rb" => Some("text/x-ruby"),
        "sh" => Some("application/x-sh"),
        "tex" => Some("text/x-tex"),
        "ts" => Some("application/typescript"),
        "js" => Some("text/javascript"),
        "json" => Some("application/json"),
        "pkl" => Some("application/octet-stream"),
        "csv" => Some("text/csv"),
        _ => None,
    };
    fixed.map(str::to_string).unwrap_or_else(|| {
        mime_guess::from_ext(&ext)
            .first_or_octet_stream()
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn openai_supported_types_are_served_with_their_mime_type() {
        let cases = [
            ("a.csv", "text/csv"),
            ("a.png", "image/png"),
            ("a.pdf", "application/pdf"),
            ("a.json", "application/json"),
            ("a.txt", "text/plain"),
            ("a.py", "text/x-python"),
            ("a.ts", "application/typescript"),
            ("a.md", "text/markdown"),
            (
                "a.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            (
                "a.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                "a.pptx",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ),
            ("A.JPG", "image/jpeg"),
            ("noext", "application/octet-stream"),
        ];
        for (name, want) in cases {
            assert_eq!(content_type(name), want, "{name}");
        }
    }
}
