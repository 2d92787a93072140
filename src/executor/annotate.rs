//! Finding `sandbox:/mnt/data/...` links in the model's answer, so each can become a
//! `file_path` annotation over exactly that text, and file_search citation marks
//! (`【0:1†notes.md】`), each a `file_citation`. Indices count characters, as OpenAI's do.

const SCHEME: &str = "sandbox:";

#[derive(Debug, PartialEq, Eq)]
pub struct SandboxLink {
    /// The link as written, e.g. `sandbox:/mnt/data/out.csv`.
    pub text: String,
    /// The path in the sandbox, percent-decoded, e.g. `/mnt/data/out.csv`.
    pub path: String,
    pub start_index: usize,
    pub end_index: usize,
}

pub fn sandbox_links(text: &str) -> Vec<SandboxLink> {
    let mut links = vec![];
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find(SCHEME) {
        let start = search_from + offset;
        let rest = &text[start + SCHEME.len()..];
        let len = rest
            .find(|c: char| {
                c.is_whitespace() || matches!(c, ')' | ']' | '"' | '\'' | '<' | '>' | '`')
            })
            .unwrap_or(rest.len());
        // A sentence may end right after the link.
        let link_path = rest[..len].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        let end = start + SCHEME.len() + link_path.len();
        if link_path.starts_with("/mnt/data/") && link_path.len() > "/mnt/data/".len() {
            links.push(SandboxLink {
                text: text[start..end].to_string(),
                path: percent_decode(link_path),
                start_index: text[..start].chars().count(),
                end_index: text[..end].chars().count(),
            });
        }
        search_from = end.max(start + SCHEME.len());
    }
    links
}

/// A citation mark as the model wrote it: result `index` of the run's file_search call `call`.
#[derive(Debug, PartialEq, Eq)]
pub struct CitationMark {
    pub text: String,
    pub call: usize,
    pub index: usize,
    pub start_index: usize,
    pub end_index: usize,
}

pub fn citation_marks(text: &str) -> Vec<CitationMark> {
    let mut marks = vec![];
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find('【') {
        let start = search_from + offset;
        let body_start = start + '【'.len_utf8();
        let Some(len) = text[body_start..].find('】') else {
            break;
        };
        let end = body_start + len + '】'.len_utf8();
        let body = &text[body_start..body_start + len];
        let numbers = body.split('†').next().unwrap_or_default();
        if let Some((call, index)) = numbers.split_once(':') {
            if let (Ok(call), Ok(index)) = (call.trim().parse(), index.trim().parse()) {
                marks.push(CitationMark {
                    text: text[start..end].to_string(),
                    call,
                    index,
                    start_index: text[..start].chars().count(),
                    end_index: text[..end].chars().count(),
                });
            }
        }
        search_from = body_start;
    }
    marks
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citation_marks_are_found_with_character_indices() {
        let text = "Ünïcode first. Launch is Tuesday【0:1†notes.md】 and costs 3【1:0†b.txt】.【bad】【2:x†c】";
        let marks = citation_marks(text);
        assert_eq!(marks.len(), 2);
        assert_eq!((marks[0].call, marks[0].index), (0, 1));
        assert_eq!(marks[0].text, "【0:1†notes.md】");
        let chars: Vec<char> = text.chars().collect();
        let slice: String = chars[marks[0].start_index..marks[0].end_index]
            .iter()
            .collect();
        assert_eq!(slice, "【0:1†notes.md】");
        assert_eq!((marks[1].call, marks[1].index), (1, 0));
    }

    #[test]
    fn a_markdown_link_is_found_with_character_indices() {
        let text = "Voilà: [download](sandbox:/mnt/data/out.csv).";
        let links = sandbox_links(text);
        assert_eq!(links.len(), 1);
        let l = &links[0];
        assert_eq!(l.text, "sandbox:/mnt/data/out.csv");
        assert_eq!(l.path, "/mnt/data/out.csv");
        let chars: Vec<char> = text.chars().collect();
        let covered: String = chars[l.start_index..l.end_index].iter().collect();
        assert_eq!(covered, l.text);
    }

    #[test]
    fn several_links_and_sentence_punctuation() {
        let text = "See sandbox:/mnt/data/a.png and sandbox:/mnt/data/my%20file.xlsx.";
        let links = sandbox_links(text);
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].path, "/mnt/data/a.png");
        assert_eq!(links[1].text, "sandbox:/mnt/data/my%20file.xlsx");
        assert_eq!(links[1].path, "/mnt/data/my file.xlsx");
    }

    #[test]
    fn links_outside_mnt_data_are_ignored() {
        assert!(sandbox_links("sandbox:/etc/passwd and sandbox:/mnt/data/").is_empty());
    }
}
