//! A file's text, for indexing. Text files are read as they are; PDF, Word and PowerPoint
//! documents are opened by the sandbox's own Python libraries (pypdf, python-docx,
//! python-pptx) in a throwaway sandbox session, so no parser of untrusted documents runs in
//! the server itself.

use tokio_util::sync::CancellationToken;

use super::IndexFailure;
use crate::sandbox::SandboxManager;

/// Largest text taken from one document.
const MAX_TEXT_BYTES: u64 = 64 * 1024 * 1024;
const TEXT_OUT: &str = "/mnt/data/.assistd-extracted.txt";

enum Kind {
    Text,
    Document(&'static str),
}

fn kind_of(filename: &str) -> Option<Kind> {
    let mime = crate::domain::files::content_type(filename);
    let text = mime.starts_with("text/")
        || matches!(
            mime.as_str(),
            "application/json"
                | "application/x-sh"
                | "application/typescript"
                | "application/javascript"
                | "application/xml"
                | "application/x-yaml"
        );
    if text {
        return Some(Kind::Text);
    }
    let extension = filename.rsplit('.').next().unwrap_or_default();
    match extension.to_ascii_lowercase().as_str() {
        "pdf" => Some(Kind::Document(PDF)),
        "docx" => Some(Kind::Document(DOCX)),
        "pptx" => Some(Kind::Document(PPTX)),
        _ => None,
    }
}

const PDF: &str = "from pypdf import PdfReader\n\
text = '\\n\\n'.join((page.extract_text() or '') for page in PdfReader(path).pages)";
const DOCX: &str = "import docx\n\
document = docx.Document(path)\n\
parts = [p.text for p in document.paragraphs]\n\
for table in document.tables:\n    \
    for row in table.rows:\n        \
        parts.append(' | '.join(cell.text for cell in row.cells))\n\
text = '\\n'.join(parts)";
const PPTX: &str = "from pptx import Presentation\n\
text = '\\n\\n'.join('\\n'.join(shape.text_frame.text for shape in slide.shapes if shape.has_text_frame) \
for slide in Presentation(path).slides)";

/// The text of `bytes`, a file called `filename`.
pub async fn text_of(
    sandbox: &SandboxManager,
    filename: &str,
    bytes: Vec<u8>,
) -> Result<String, IndexFailure> {
    let text = match kind_of(filename) {
        None => return Err(unsupported(filename)),
        Some(Kind::Text) => String::from_utf8(bytes).map_err(|_| unsupported(filename))?,
        Some(Kind::Document(reader)) => from_document(sandbox, filename, &bytes, reader).await?,
    };
    if text.trim().is_empty() {
        return Err(IndexFailure {
            code: "invalid_file",
            message: format!("The file {filename} has no text."),
        });
    }
    Ok(text)
}

fn unsupported(filename: &str) -> IndexFailure {
    IndexFailure {
        code: "unsupported_file",
        message: format!(
            "The file type of {filename} is not supported for file_search: text files (plain text, Markdown, code, CSV, JSON, HTML), PDF, .docx and .pptx are."
        ),
    }
}

async fn from_document(
    sandbox: &SandboxManager,
    filename: &str,
    bytes: &[u8],
    reader: &str,
) -> Result<String, IndexFailure> {
    let session = format!("extract-{}", uuid::Uuid::new_v4().simple());
    let result = run_reader(sandbox, &session, filename, bytes, reader).await;
    sandbox.drop_session(&session).await;
    result
}

async fn run_reader(
    sandbox: &SandboxManager,
    session: &str,
    filename: &str,
    bytes: &[u8],
    reader: &str,
) -> Result<String, IndexFailure> {
    let failed = |why: String| IndexFailure {
        code: "invalid_file",
        message: format!("The text of {filename} could not be read: {why}"),
    };
    let path = sandbox
        .put_file(session, filename, bytes)
        .await
        .map_err(|e| failed(e.to_string()))?;
    // JSON string literals are Python string literals.
    let code = format!(
        "path = {}\n{reader}\nopen({}, 'w', encoding='utf-8').write(text)\n",
        serde_json::Value::from(path),
        serde_json::Value::from(TEXT_OUT),
    );
    let out = sandbox
        .exec(session, &code, &CancellationToken::new())
        .await
        .map_err(|e| failed(e.to_string()))?;
    if let Some(error) = &out.error {
        return Err(failed(format!("{}: {}", error.ename, error.evalue)));
    }
    if out.timed_out {
        return Err(failed("it took too long".into()));
    }
    let text = sandbox
        .read_file(session, TEXT_OUT, MAX_TEXT_BYTES)
        .await
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| failed("no text came out".into()))?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_office_documents_are_known_and_other_files_are_not() {
        assert!(matches!(kind_of("notes.md"), Some(Kind::Text)));
        assert!(matches!(kind_of("data.json"), Some(Kind::Text)));
        assert!(matches!(kind_of("Report.PDF"), Some(Kind::Document(PDF))));
        assert!(matches!(kind_of("plan.docx"), Some(Kind::Document(DOCX))));
        assert!(matches!(kind_of("deck.pptx"), Some(Kind::Document(PPTX))));
        assert!(kind_of("photo.png").is_none());
        assert!(kind_of("archive.zip").is_none());
    }
}
