//! Cutting a file's text into overlapping chunks of about `max_chunk_size_tokens` tokens, as
//! OpenAI's static chunking strategy does. Tokens are estimated (a token per four bytes of a
//! word, at least one a word), which is close for English prose and code.

/// OpenAI's `auto` strategy: 800-token chunks overlapping by 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunking {
    pub max_chunk_size_tokens: u32,
    pub chunk_overlap_tokens: u32,
}

impl Default for Chunking {
    fn default() -> Self {
        Self {
            max_chunk_size_tokens: 800,
            chunk_overlap_tokens: 400,
        }
    }
}

/// The words of `text`, each with the whitespace after it, so chunks keep the text's layout.
fn words_of(text: &str) -> Vec<&str> {
    let mut starts = vec![];
    let mut after_space = true;
    for (i, c) in text.char_indices() {
        if !c.is_whitespace() && after_space {
            starts.push(i);
        }
        after_space = c.is_whitespace();
    }
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    starts.iter().zip(ends).map(|(&s, e)| &text[s..e]).collect()
}

fn tokens(word: &str) -> u32 {
    (word.trim_end().len() as u32).div_ceil(4).max(1)
}

impl Chunking {
    /// The chunks of `text`, in order; each next one starts `chunk_overlap_tokens` before the
    /// end of the previous.
    pub fn split(&self, text: &str) -> Vec<String> {
        let words = words_of(text);
        let max = self.max_chunk_size_tokens.max(1);
        let overlap = self.chunk_overlap_tokens.min(max / 2);
        let mut chunks = vec![];
        let mut start = 0;
        while start < words.len() {
            let mut end = start;
            let mut used = 0;
            while end < words.len() && (end == start || used + tokens(words[end]) <= max) {
                used += tokens(words[end]);
                end += 1;
            }
            chunks.push(words[start..end].concat().trim().to_string());
            if end == words.len() {
                break;
            }
            // Step back over `overlap` tokens for the next chunk, but always move forward.
            let mut next = end;
            let mut back = 0;
            while next > start + 1 && back + tokens(words[next - 1]) <= overlap {
                back += tokens(words[next - 1]);
                next -= 1;
            }
            start = next;
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> String {
        (0..n)
            .map(|i| format!("w{i:03}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_short_text_is_one_chunk() {
        assert_eq!(
            Chunking::default().split("Hello,\n  world."),
            vec!["Hello,\n  world."]
        );
        assert!(Chunking::default().split("  \n ").is_empty());
    }

    #[test]
    fn chunks_hold_at_most_the_maximum_and_overlap_by_the_overlap() {
        // Every word "wNNN" is one token.
        let chunking = Chunking {
            max_chunk_size_tokens: 10,
            chunk_overlap_tokens: 4,
        };
        let chunks = chunking.split(&words(25));
        assert_eq!(chunks[0], words(10));
        assert!(chunks[1].starts_with("w006 w007 w008 w009 w010"));
        assert!(chunks.iter().all(|c| c.split(' ').count() <= 10));
        assert!(chunks.last().unwrap().ends_with("w024"));
        // Every word is in some chunk, in order.
        let joined = chunks.join(" ");
        assert!((0..25).all(|i| joined.contains(&format!("w{i:03}"))));
    }

    #[test]
    fn a_word_longer_than_a_chunk_still_moves_on() {
        let chunking = Chunking {
            max_chunk_size_tokens: 2,
            chunk_overlap_tokens: 1,
        };
        let long = "x".repeat(100);
        assert_eq!(
            chunking.split(&format!("{long} tail")),
            vec![long, "tail".to_string()]
        );
    }
}
