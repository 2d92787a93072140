//! The code of a code_interpreter call, decoded while the model streams its JSON arguments
//! (`{"code": "...`), so clients see the code as it is written. Escapes may be cut anywhere
//! across fragments; `\uXXXX` pairs join into one character. Arguments that are not a JSON
//! object are the code itself, as the hosted tool takes raw Python.
//!
//! What this decodes is what the step records and what runs: the stream and the stored input
//! are the same text by construction.

/// How the arguments turned out once the model finished them.
#[derive(Debug, PartialEq)]
pub enum Arguments {
    /// A JSON object (its `code`, if a string, is the code) or raw text.
    Valid,
    /// They began as a JSON object but are not valid JSON; nothing should run.
    Invalid(String),
}

#[derive(Debug, Default)]
pub struct CodeStream {
    state: State,
    /// Everything received, to check the whole once it is complete.
    received: String,
    /// Leading whitespace, held until the first other character says which form this is.
    leading: String,
    /// The code decoded so far.
    code: String,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Start,
    Raw,
    Object(Object),
    /// Past the end of the object, or past something that cannot be JSON: nothing more decodes.
    Done,
}

#[derive(Debug)]
enum Object {
    ExpectKey,
    Key(JsonString, String),
    ExpectColon {
        is_code: bool,
    },
    ExpectValue {
        is_code: bool,
    },
    /// Inside the `code` string: its characters are the code.
    Code(JsonString),
    /// Inside another value, skipped: nesting depth and whether a string is open.
    Skip {
        depth: u32,
        string: Option<JsonString>,
    },
    Scalar,
    AfterValue,
}

impl CodeStream {
    /// Takes the next fragment of the arguments; returns the code characters it completed.
    pub fn push(&mut self, fragment: &str) -> String {
        self.received.push_str(fragment);
        let mut out = String::new();
        for c in fragment.chars() {
            self.step(c, &mut out);
        }
        self.code.push_str(&out);
        out
    }

    /// Ends the stream: the code characters still held back, the whole code, and whether
    /// the arguments were valid.
    pub fn finish(mut self) -> (String, String, Arguments) {
        let mut rest = String::new();
        if matches!(self.state, State::Start) {
            // Only whitespace (or nothing) came: as raw code, that is the code.
            rest = std::mem::take(&mut self.leading);
        }
        self.code.push_str(&rest);
        let verdict = match self.state {
            State::Start | State::Raw => Arguments::Valid,
            State::Object(_) | State::Done => {
                match serde_json::from_str::<serde_json::Value>(&self.received) {
                    Ok(serde_json::Value::Object(_)) => Arguments::Valid,
                    Ok(_) => Arguments::Invalid("the arguments are not a JSON object".into()),
                    Err(e) => Arguments::Invalid(e.to_string()),
                }
            }
        };
        (rest, self.code, verdict)
    }

    fn step(&mut self, c: char, out: &mut String) {
        match &mut self.state {
            State::Start if c.is_whitespace() => self.leading.push(c),
            State::Start if c == '{' => self.state = State::Object(Object::ExpectKey),
            State::Start => {
                out.push_str(&std::mem::take(&mut self.leading));
                out.push(c);
                self.state = State::Raw;
            }
            State::Raw => out.push(c),
            State::Done => {}
            State::Object(object) => {
                if let Some(next) = object.step(c, out) {
                    self.state = next;
                }
            }
        }
    }
}

impl Object {
    /// Moves on by one character; returns a new outer state when the object ends or breaks.
    fn step(&mut self, c: char, out: &mut String) -> Option<State> {
        let ws = c.is_whitespace();
        match self {
            Object::ExpectKey if ws => {}
            Object::ExpectKey if c == '"' => {
                *self = Object::Key(JsonString::default(), String::new())
            }
            Object::ExpectKey if c == '}' => return Some(State::Done),
            Object::Key(s, key) => {
                if s.step(c, key) {
                    let is_code = key == "code";
                    *self = Object::ExpectColon { is_code };
                }
            }
            Object::ExpectColon { .. } if ws => {}
            Object::ExpectColon { is_code } if c == ':' => {
                *self = Object::ExpectValue { is_code: *is_code }
            }
            Object::ExpectValue { .. } if ws => {}
            Object::ExpectValue { is_code: true } if c == '"' => {
                *self = Object::Code(JsonString::default())
            }
            Object::ExpectValue { .. } => {
                *self = match c {
                    '"' => Object::Skip {
                        depth: 0,
                        string: Some(JsonString::default()),
                    },
                    '{' | '[' => Object::Skip {
                        depth: 1,
                        string: None,
                    },
                    _ => Object::Scalar,
                }
            }
            Object::Code(s) => {
                if s.step(c, out) {
                    // The first `code` is the code; anything after it is only checked.
                    *self = Object::AfterValue;
                }
            }
            Object::Skip { depth, string } => {
                if let Some(s) = string {
                    if s.step(c, &mut String::new()) {
                        *string = None;
                        if *depth == 0 {
                            *self = Object::AfterValue;
                        }
                    }
                } else {
                    match c {
                        '"' => *string = Some(JsonString::default()),
                        '{' | '[' => *depth += 1,
                        '}' | ']' => {
                            *depth -= 1;
                            if *depth == 0 {
                                *self = Object::AfterValue;
                            }
                        }
                        _ => {}
                    }
                }
            }
            Object::Scalar | Object::AfterValue if c == ',' => *self = Object::ExpectKey,
            Object::Scalar | Object::AfterValue if c == '}' => return Some(State::Done),
            Object::Scalar => {}
            Object::AfterValue if ws => {}
            _ => return Some(State::Done),
        }
        None
    }
}

/// The inside of a JSON string after its opening quote, decoded a character at a time.
#[derive(Debug, Default)]
struct JsonString {
    escape: Escape,
    /// A high surrogate from `\uD8xx`, waiting for its low half.
    high: Option<u16>,
}

#[derive(Debug, Default)]
enum Escape {
    #[default]
    None,
    Backslash,
    Unicode(u16, u8),
}

impl JsonString {
    /// Decodes `c` into `out`; true when `c` closed the string.
    fn step(&mut self, c: char, out: &mut String) -> bool {
        match self.escape {
            Escape::None => match c {
                '"' => {
                    self.flush_high(out);
                    return true;
                }
                '\\' => self.escape = Escape::Backslash,
                c => self.push(c, out),
            },
            Escape::Backslash => {
                self.escape = Escape::None;
                let decoded = match c {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'u' => {
                        self.escape = Escape::Unicode(0, 0);
                        return false;
                    }
                    // `\"`, `\\`, `\/`; anything else is invalid JSON and kept as written.
                    other => other,
                };
                self.push(decoded, out);
            }
            Escape::Unicode(value, digits) => {
                let Some(d) = c.to_digit(16) else {
                    // Not JSON; keep the character so the shown code stays readable.
                    self.escape = Escape::None;
                    self.push(c, out);
                    return false;
                };
                let value = (value << 4) | d as u16;
                if digits < 3 {
                    self.escape = Escape::Unicode(value, digits + 1);
                } else {
                    self.escape = Escape::None;
                    self.unit(value, out);
                }
            }
        }
        false
    }

    fn unit(&mut self, unit: u16, out: &mut String) {
        match unit {
            0xD800..=0xDBFF => {
                self.flush_high(out);
                self.high = Some(unit);
            }
            0xDC00..=0xDFFF => match self.high.take() {
                Some(high) => {
                    let c =
                        0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                    out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                None => out.push(char::REPLACEMENT_CHARACTER),
            },
            _ => self.push(char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}'), out),
        }
    }

    fn push(&mut self, c: char, out: &mut String) {
        self.flush_high(out);
        out.push(c);
    }

    /// A high surrogate with no low half after it stands for nothing: a replacement character.
    fn flush_high(&mut self, out: &mut String) {
        if self.high.take().is_some() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams `arguments` cut into pieces of `size` characters; returns the pieces decoded.
    fn stream(arguments: &str, size: usize) -> (Vec<String>, String, Arguments) {
        let chars: Vec<char> = arguments.chars().collect();
        let mut decoder = CodeStream::default();
        let mut pieces = vec![];
        for chunk in chars.chunks(size) {
            let piece = decoder.push(&chunk.iter().collect::<String>());
            if !piece.is_empty() {
                pieces.push(piece);
            }
        }
        let (rest, code, verdict) = decoder.finish();
        if !rest.is_empty() {
            pieces.push(rest);
        }
        (pieces, code, verdict)
    }

    fn code_at_every_cut(arguments: &str) -> String {
        let (_, whole, verdict) = stream(arguments, arguments.len().max(1));
        assert_eq!(verdict, Arguments::Valid, "{arguments}");
        for size in 1..8 {
            let (pieces, code, _) = stream(arguments, size);
            assert_eq!(pieces.concat(), code, "pieces of {size}");
            assert_eq!(code, whole, "pieces of {size}");
        }
        whole
    }

    #[test]
    fn escapes_cut_across_fragments_decode_as_serde_does() {
        let arguments = serde_json::json!({
            "code": "print(\"a\\\\b\")\nx = 'é'  # caf\u{e9} \u{1F600}\ttab /"
        })
        .to_string();
        let expected = serde_json::from_str::<serde_json::Value>(&arguments).unwrap()["code"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(code_at_every_cut(&arguments), expected);
        // The same code written with \u escapes, as some models send it.
        let escaped = r#"{"code": "caf\u00e9 \ud83d\ude00 \/ \"q\""}"#;
        assert_eq!(code_at_every_cut(escaped), "café 😀 / \"q\"");
    }

    #[test]
    fn the_code_key_is_found_after_other_keys_of_any_shape() {
        let arguments =
            r#"{ "lang" : "py", "opts": {"a": [1, "}\"]"], "b": {}}, "n": -1.5e3, "code":"x=1" }"#;
        assert_eq!(code_at_every_cut(arguments), "x=1");
        assert_eq!(code_at_every_cut(r#"{"other": 1}"#), "");
    }

    #[test]
    fn arguments_that_are_not_an_object_are_the_code() {
        assert_eq!(code_at_every_cut("print(2)"), "print(2)");
        assert_eq!(code_at_every_cut("  import os\n"), "  import os\n");
        assert_eq!(code_at_every_cut(""), "");
        assert_eq!(code_at_every_cut("   "), "   ");
    }

    #[test]
    fn broken_json_is_invalid_and_keeps_what_was_shown() {
        let (pieces, code, verdict) = stream(r#"{"code": "print(1)"#, 3);
        assert_eq!(pieces.concat(), "print(1)");
        assert_eq!(code, "print(1)");
        assert!(matches!(verdict, Arguments::Invalid(_)));
        let (_, _, verdict) = stream(r#"{"code": "a\ud800"}"#, 2);
        assert!(matches!(verdict, Arguments::Invalid(_)), "a lone surrogate");
        let (_, _, verdict) = stream(r#"{"code": "a"} trailing"#, 2);
        assert!(matches!(verdict, Arguments::Invalid(_)));
    }
}
