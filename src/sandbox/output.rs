//! What one execution produced, as the run executor consumes it.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::driver::Reply;

/// The outcome of running one cell of code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The text form of a trailing expression's value, as a notebook would show it (text
    /// that display() shows is part of `stdout`, in order with what was printed).
    pub result: Option<String>,
    /// The exception the code raised, or why the sandbox had to be restarted.
    pub error: Option<ExecError>,
    /// PNG images: figures the code showed or left open, and images it displayed (JPEG and
    /// SVG arrive converted to PNG).
    pub images: Vec<Vec<u8>>,
    /// Files under /mnt/data this execution created or changed.
    pub files: Vec<ChangedFile>,
    /// Files under /mnt/data that were there before this execution and are gone after it
    /// (deleted or renamed by the code).
    pub removed: Vec<String>,
    /// The code ran past the time limit and was interrupted.
    pub timed_out: bool,
    /// The Python process was replaced: variables are gone, /mnt/data is kept.
    pub state_reset: bool,
    /// stdout/stderr were cut to the output limit (the text says where).
    pub output_truncated: bool,
    /// Processes the cell left running, as the driver counted them; `None` when not counted.
    pub processes_left: Option<u32>,
    /// Set on the first output of a session restored from a checkpoint: which variables and
    /// files came back and which did not, for the model to read before the output.
    pub restore_note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecError {
    pub ename: String,
    pub evalue: String,
    /// The full formatted traceback, as Python prints it.
    pub traceback: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    pub path: String,
    pub size: u64,
}

impl ExecOutput {
    /// The text a code_interpreter `logs` output shows: what was printed, the trailing
    /// expression's value, the traceback, and a plain note when the time limit hit or the
    /// sandbox was restarted.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        let mut add = |text: &str| {
            if text.is_empty() {
                return;
            }
            if !logs.is_empty() && !logs.ends_with('\n') {
                logs.push('\n');
            }
            logs.push_str(text);
        };
        add(&self.stdout);
        add(&self.stderr);
        if let Some(result) = &self.result {
            add(result);
        }
        if let Some(error) = &self.error {
            if !error.traceback.is_empty() {
                add(&error.traceback);
            } else if error.evalue.is_empty() {
                add(&error.ename);
            } else {
                add(&format!("{}: {}", error.ename, error.evalue));
            }
        }
        // The driver reports a timeout as a TimeoutError and a restart comes with its own
        // error; the note is for a timeout that arrived without either.
        if self.timed_out && self.error.is_none() {
            add("[Execution interrupted: it exceeded the time limit.]");
        }
        logs
    }

    /// The output for an execution after which the Python process had to be replaced.
    pub(crate) fn state_reset(timed_out: bool, why: &str) -> ExecOutput {
        let evalue = format!(
            "{why}; the sandbox was restarted: variables were lost, files in /mnt/data were kept."
        );
        ExecOutput {
            error: Some(ExecError {
                ename: "SandboxRestarted".into(),
                traceback: format!("SandboxRestarted: {evalue}"),
                evalue,
            }),
            timed_out,
            state_reset: true,
            ..Default::default()
        }
    }
}

impl From<Reply> for ExecOutput {
    fn from(reply: Reply) -> Self {
        let images = reply
            .images
            .iter()
            .filter_map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "dropping undecodable sandbox image"),
                    )
                    .ok()
            })
            .collect();
        ExecOutput {
            stdout: reply.stdout,
            stderr: reply.stderr,
            result: reply.result,
            error: reply.error.map(|e| ExecError {
                ename: e.ename,
                evalue: e.evalue,
                traceback: e.traceback,
            }),
            images,
            files: reply.files,
            removed: reply.removed,
            timed_out: reply.timed_out,
            state_reset: false,
            output_truncated: reply.output_truncated,
            processes_left: reply.processes_left,
            restore_note: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_join_printed_text_result_and_traceback_on_separate_lines() {
        let output = ExecOutput {
            stdout: "hello".into(),
            stderr: "warning\n".into(),
            result: Some("42".into()),
            error: Some(ExecError {
                ename: "ValueError".into(),
                evalue: "bad".into(),
                traceback: "Traceback (most recent call last):\nValueError: bad".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            output.logs(),
            "hello\nwarning\n42\nTraceback (most recent call last):\nValueError: bad"
        );
    }

    #[test]
    fn logs_note_a_timeout_and_a_restart() {
        let timed_out = ExecOutput {
            timed_out: true,
            ..Default::default()
        };
        assert!(timed_out.logs().contains("time limit"));
        let reset = ExecOutput::state_reset(false, "the Python process died");
        assert!(reset.logs().contains("variables were lost"));
        assert!(reset.logs().contains("/mnt/data were kept"));
    }
}
