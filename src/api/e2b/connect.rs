//! envd's Connect RPCs with the JSON codec, as E2B's SDKs call them over HTTP/1.1: unary
//! `filesystem.Filesystem/{ListDir,Stat,MakeDir,Remove,Move}` and `process.Process/{SendSignal,
//! SendInput,CloseStdin}` (a JSON body in, a JSON body out; errors as a non-200 status and
//! `{"code": "not_found", "message"}`), and the server-streaming `process.Process/Start`: one
//! request envelope in, envelopes out (start, data..., end), closed by the end-stream envelope
//! (flag 0x02) that carries an error, if any. An envelope is 1 flag byte, a 4-byte big-endian
//! length and the JSON.

use std::collections::HashMap;

use axum::body::Body as HttpBody;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::data::{sandbox_path, writable_path, Target, ENVD_PORT};
use crate::api::AppState;
use crate::sandbox::commands::{CommandEvent, CommandSpec, FsFailure, FsOp, PtySize};
use crate::sandbox::ExecUser;
use crate::sandbox::SandboxError;

const FLAG_END_STREAM: u8 = 0x02;
const FLAG_COMPRESSED: u8 = 0x01;

/// A Connect error: its code names the HTTP status of a unary answer.
#[derive(Debug)]
pub struct ConnectError {
    code: &'static str,
    message: String,
}

impl ConnectError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        ConnectError {
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid_argument", message)
    }

    fn status(&self) -> StatusCode {
        match self.code {
            "invalid_argument" | "failed_precondition" | "out_of_range" => StatusCode::BAD_REQUEST,
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "permission_denied" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "already_exists" | "aborted" => StatusCode::CONFLICT,
            "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "deadline_exceeded" => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        (
            self.status(),
            [(header::CONTENT_TYPE, "application/json")],
            self.body().to_string(),
        )
            .into_response()
    }
}

impl From<FsFailure> for ConnectError {
    fn from(f: FsFailure) -> Self {
        let code = match f.code.as_str() {
            "not_found" => "not_found",
            "already_exists" => "already_exists",
            "permission_denied" => "permission_denied",
            "invalid_argument" => "invalid_argument",
            "too_large" => "resource_exhausted",
            _ => "internal",
        };
        ConnectError::new(code, f.message)
    }
}

impl From<SandboxError> for ConnectError {
    fn from(e: SandboxError) -> Self {
        tracing::warn!(error = %e, "e2b connect rpc");
        ConnectError::new("unavailable", format!("the sandbox failed: {e}"))
    }
}

impl From<super::E2bError> for ConnectError {
    fn from(e: super::E2bError) -> Self {
        let code = match e.status {
            StatusCode::BAD_REQUEST => "invalid_argument",
            StatusCode::UNAUTHORIZED => "unauthenticated",
            StatusCode::NOT_FOUND => "not_found",
            _ => "unavailable",
        };
        ConnectError::new(code, e.message)
    }
}

type RpcResult<T> = Result<T, ConnectError>;

fn unary_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> RpcResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ConnectError::invalid(format!("invalid request: {e}")))
}

fn ok(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

// ----------------------------------------------------------------------------- filesystem

#[derive(Debug, Deserialize)]
struct PathRequest {
    #[serde(default)]
    path: String,
    #[serde(default)]
    depth: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct MoveRequest {
    #[serde(default)]
    source: String,
    #[serde(default)]
    destination: String,
}

pub async fn filesystem(
    State(state): State<AppState>,
    target: Result<Target, super::E2bError>,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    match filesystem_call(&state, target, &method, &body).await {
        Ok(value) => ok(value),
        Err(e) => e.into_response(),
    }
}

async fn filesystem_call(
    state: &AppState,
    target: Result<Target, super::E2bError>,
    method: &str,
    body: &[u8],
) -> RpcResult<Value> {
    let target = target?;
    target.require(ENVD_PORT)?;
    let session = target.id();
    let answer = match method {
        "ListDir" | "Stat" | "MakeDir" | "Remove" => {
            let req: PathRequest = unary_json(body)?;
            let (path, op) = match method {
                "ListDir" => (
                    sandbox_path(&req.path)?,
                    FsOp::List {
                        depth: req.depth.unwrap_or(1).clamp(1, 16),
                    },
                ),
                "Stat" => (sandbox_path(&req.path)?, FsOp::Stat),
                "MakeDir" => (writable_path(&req.path)?, FsOp::MakeDir),
                _ => (writable_path(&req.path)?, FsOp::Remove),
            };
            state.sandbox.fs(session, &path, op).await?
        }
        "Move" => {
            let req: MoveRequest = unary_json(body)?;
            let from = writable_path(&req.source)?;
            let to = writable_path(&req.destination)?;
            state.sandbox.fs(session, &from, FsOp::Move { to }).await?
        }
        other => {
            return Err(ConnectError::new(
                "unimplemented",
                format!("filesystem.Filesystem/{other} is not served here"),
            ))
        }
    };
    Ok(answer?)
}

// ----------------------------------------------------------------------------- process

#[derive(Debug, Default, Deserialize)]
struct StartRequest {
    process: Option<ProcessConfig>,
    pty: Option<Pty>,
    #[serde(default)]
    stdin: Option<bool>,
}

/// envd's `PTY {size: {rows, cols}}`.
#[derive(Debug, Default, Deserialize)]
struct Pty {
    size: Option<Size>,
}

#[derive(Debug, Default, Deserialize)]
struct Size {
    #[serde(default)]
    rows: u32,
    #[serde(default)]
    cols: u32,
}

impl Pty {
    /// The terminal's size: 24x80 when none is given; at most 1000x1000.
    fn size(&self) -> RpcResult<PtySize> {
        let Some(size) = &self.size else {
            return Ok(PtySize { rows: 24, cols: 80 });
        };
        let check = |n: u32, what: &str| {
            u16::try_from(n)
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ConnectError::invalid(format!(
                        "pty.size.{what} must be from 1 to 1000, got {n}"
                    ))
                })
        };
        Ok(PtySize {
            rows: check(size.rows, "rows")?,
            cols: check(size.cols, "cols")?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct UpdateRequest {
    process: Option<Selector>,
    pty: Option<Pty>,
}

#[derive(Debug, Default, Deserialize)]
struct ProcessConfig {
    #[serde(default)]
    cmd: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    envs: HashMap<String, String>,
    cwd: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Selector {
    pid: Option<u32>,
    tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct SignalRequest {
    process: Option<Selector>,
    #[serde(default)]
    signal: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct InputRequest {
    process: Option<Selector>,
    input: Option<Input>,
}

#[derive(Debug, Default, Deserialize)]
struct Input {
    stdin: Option<String>,
    pty: Option<String>,
}

pub async fn process(
    State(state): State<AppState>,
    target: Result<Target, super::E2bError>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == "Start" {
        return start(state, target, &headers, body).await;
    }
    match process_call(&state, target, &method, &body).await {
        Ok(value) => ok(value),
        Err(e) => e.into_response(),
    }
}

fn pid_of(selector: Option<Selector>) -> RpcResult<u32> {
    match selector {
        Some(Selector { pid: Some(pid), .. }) => Ok(pid),
        Some(Selector { tag: Some(_), .. }) => Err(ConnectError::new(
            "unimplemented",
            "selecting a process by tag is not served here; use its pid",
        )),
        _ => Err(ConnectError::invalid("process.pid is required")),
    }
}

/// envd's answer for a pid that names no running process (or one whose input is closed).
fn no_process(pid: u32) -> ConnectError {
    ConnectError::new(
        "not_found",
        format!("process with pid {pid} not found (it has ended, or its input was closed)"),
    )
}

async fn process_call(
    state: &AppState,
    target: Result<Target, super::E2bError>,
    method: &str,
    body: &[u8],
) -> RpcResult<Value> {
    let target = target?;
    target.require(ENVD_PORT)?;
    let session = target.id();
    match method {
        "SendSignal" => {
            let req: SignalRequest = unary_json(body)?;
            let pid = pid_of(req.process)?;
            let signal = match req.signal {
                Some(Value::String(s)) => s,
                Some(Value::Number(n)) if n.as_u64() == Some(15) => "SIGNAL_SIGTERM".into(),
                Some(Value::Number(n)) if n.as_u64() == Some(9) => "SIGNAL_SIGKILL".into(),
                _ => "SIGNAL_SIGKILL".into(),
            };
            let name = match signal.as_str() {
                "SIGNAL_SIGTERM" => "TERM",
                "SIGNAL_SIGKILL" => "KILL",
                other => {
                    return Err(ConnectError::invalid(format!(
                        "signal {other} is not SIGNAL_SIGTERM or SIGNAL_SIGKILL"
                    )))
                }
            };
            if !state.sandbox.signal_command(session, pid, name).await? {
                return Err(no_process(pid));
            }
            Ok(json!({}))
        }
        "SendInput" => {
            let req: InputRequest = unary_json(body)?;
            let pid = pid_of(req.process)?;
            let input = req.input.unwrap_or_default();
            let (data, field) = match (input.stdin, input.pty) {
                (Some(data), _) => (data, "stdin"),
                (None, Some(data)) => (data, "pty"),
                (None, None) => (String::new(), "stdin"),
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|_| ConnectError::invalid(format!("input.{field} is not base64")))?;
            if !state.sandbox.send_input(session, pid, &bytes).await? {
                return Err(no_process(pid));
            }
            Ok(json!({}))
        }
        "CloseStdin" => {
            let req: SignalRequest = unary_json(body)?;
            let pid = pid_of(req.process)?;
            if !state.sandbox.close_input(session, pid).await {
                return Err(no_process(pid));
            }
            Ok(json!({}))
        }
        "Update" => {
            let req: UpdateRequest = unary_json(body)?;
            let pid = pid_of(req.process)?;
            let Some(pty) = req.pty else {
                return Ok(json!({}));
            };
            if !state
                .sandbox
                .resize_command(session, pid, pty.size()?)
                .await?
            {
                return Err(no_process(pid));
            }
            Ok(json!({}))
        }
        other => Err(ConnectError::new(
            "unimplemented",
            format!("process.Process/{other} is not served here"),
        )),
    }
}

/// The user a request runs as: envd takes it from `Authorization: Basic base64("<user>:")`
/// (the SDKs send it when a call names one); none is the sandbox user.
fn exec_user(headers: &HeaderMap) -> RpcResult<ExecUser> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(ExecUser::Sandbox);
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return Ok(ExecUser::Sandbox);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ConnectError::invalid("the Authorization header is not base64 of 'user:'")
        })?;
    let name = decoded.split(':').next().unwrap_or_default();
    ExecUser::from_e2b(name).ok_or_else(|| {
        ConnectError::invalid(format!(
            "user '{name}' does not exist here: use 'user' (the default) or 'root'"
        ))
    })
}

/// One envelope around `value`.
fn envelope(flags: u8, value: &Value) -> Bytes {
    let json = value.to_string();
    let mut out = BytesMut::with_capacity(5 + json.len());
    out.put_u8(flags);
    out.put_u32(json.len() as u32);
    out.extend_from_slice(json.as_bytes());
    out.freeze()
}

/// Most bytes of output one data envelope carries when more is already waiting. The SDKs'
/// own decoding (JSON, then base64, per envelope) is what bounds a large output's rate; its
/// per-byte cost is least with envelopes of 64 to 256 KiB (see bench/README.md, "PTY and tar
/// persistence"), and fewer bytes in flight keep a slow client's backlog small.
const MAX_DATA_BYTES: usize = 128 * 1024;

/// One `data` envelope (`stdout`, `stderr` or `pty`) carrying `bytes` and the output of the same
/// kind already waiting behind it (up to [`MAX_DATA_BYTES`]): fewer, larger messages for a
/// command that writes fast, while a slow writer's output still goes out as it comes. An event
/// of another kind is left in `next`. Written by hand: base64 needs no JSON escaping.
fn data_envelope(
    field: &str,
    bytes: Bytes,
    events: &mut mpsc::Receiver<CommandEvent>,
    next: &mut Option<CommandEvent>,
) -> Bytes {
    let mut raw = bytes.len();
    let mut parts = vec![bytes];
    while raw < MAX_DATA_BYTES {
        let more = match events.try_recv() {
            Ok(CommandEvent::Stdout(more)) if field == "stdout" => more,
            Ok(CommandEvent::Stderr(more)) if field == "stderr" => more,
            Ok(CommandEvent::Pty(more)) if field == "pty" => more,
            Ok(other) => {
                *next = Some(other);
                break;
            }
            Err(_) => break,
        };
        raw += more.len();
        parts.push(more);
    }
    let head = format!("{{\"event\":{{\"data\":{{\"{field}\":\"");
    let tail = "\"}}}";
    let encoded = raw.div_ceil(3) * 4;
    let len = head.len() + encoded + tail.len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    out.extend_from_slice(head.as_bytes());
    encode_parts(&parts, encoded, &mut out);
    out.extend_from_slice(tail.as_bytes());
    out.freeze()
}

/// Appends the base64 of `parts` joined (`encoded` bytes of it) to `out`, straight from the
/// parts: no joined copy of the output.
fn encode_parts(parts: &[Bytes], encoded: usize, out: &mut BytesMut) {
    use base64::engine::general_purpose::STANDARD;
    let start = out.len();
    out.resize(start + encoded, 0);
    let dest = &mut out[start..];
    let mut at = 0;
    // Up to 2 bytes of a part that did not fill a 3-byte group, completed by the next part.
    let mut carry = [0u8; 3];
    let mut carried = 0;
    for part in parts {
        let mut part = &part[..];
        if carried > 0 {
            let take = (3 - carried).min(part.len());
            carry[carried..carried + take].copy_from_slice(&part[..take]);
            carried += take;
            part = &part[take..];
            if carried < 3 {
                continue;
            }
            at += STANDARD
                .encode_slice(carry, &mut dest[at..])
                .expect("sized to fit");
        }
        let whole = part.len() / 3 * 3;
        at += STANDARD
            .encode_slice(&part[..whole], &mut dest[at..])
            .expect("sized to fit");
        carried = part.len() - whole;
        carry[..carried].copy_from_slice(&part[whole..]);
    }
    if carried > 0 {
        at += STANDARD
            .encode_slice(&carry[..carried], &mut dest[at..])
            .expect("sized to fit");
    }
    debug_assert_eq!(at, encoded);
}

/// The one JSON message of a streaming request's body.
fn single_envelope(body: &[u8]) -> RpcResult<Value> {
    if body.len() < 5 {
        return Err(ConnectError::invalid(
            "the request is not a Connect envelope (1 flag byte, 4 length bytes, the message)",
        ));
    }
    let flags = body[0];
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if flags & FLAG_COMPRESSED != 0 {
        return Err(ConnectError::new(
            "unimplemented",
            "compressed envelopes are not served here",
        ));
    }
    if body.len() != 5 + len {
        return Err(ConnectError::invalid(format!(
            "the envelope says {len} bytes but {} follow",
            body.len() - 5
        )));
    }
    serde_json::from_slice(&body[5..])
        .map_err(|e| ConnectError::invalid(format!("invalid request message: {e}")))
}

fn stream_response(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/connect+json")],
        HttpBody::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

/// A stream that is only its end, carrying `error`.
fn failed_stream(error: ConnectError) -> Response {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(envelope(
        FLAG_END_STREAM,
        &json!({"error": error.body()}),
    )));
    stream_response(rx)
}

/// `process.Process/Start`: start{pid}, then data{stdout|stderr} (base64) as the command
/// writes, end{exitCode}, and the end-stream envelope.
async fn start(
    state: AppState,
    target: Result<Target, super::E2bError>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = async {
        let target = target?;
        target.require(ENVD_PORT)?;
        let user = exec_user(headers)?;
        let req: StartRequest = serde_json::from_value(single_envelope(&body)?)
            .map_err(|e| ConnectError::invalid(format!("invalid StartRequest: {e}")))?;
        let pty = req.pty.as_ref().map(Pty::size).transpose()?;
        let process = req
            .process
            .filter(|p| !p.cmd.is_empty())
            .ok_or_else(|| ConnectError::invalid("process.cmd is required"))?;
        let cwd = process.cwd.as_deref().map(sandbox_path).transpose()?;
        let spec = CommandSpec {
            cmd: process.cmd,
            args: process.args,
            envs: process.envs,
            cwd,
            stdin: req.stdin.unwrap_or(false),
            user,
            pty,
        };
        let events = state.sandbox.start_command(target.id(), spec).await?;
        Ok::<_, ConnectError>(events)
    };
    let mut events = match prepared.await {
        Ok(events) => events,
        Err(e) => return failed_stream(e),
    };
    // A few envelopes in flight: with the command's own channel, what a slow client leaves
    // unread stays a few MB, however much the command writes.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut trailer = json!({});
        let mut next = None;
        loop {
            let event = match next.take() {
                Some(event) => event,
                None => match events.recv().await {
                    Some(event) => event,
                    None => break,
                },
            };
            let frame = match event {
                CommandEvent::Start { pid } => {
                    envelope(0, &json!({"event": {"start": {"pid": pid}}}))
                }
                CommandEvent::Stdout(bytes) => {
                    data_envelope("stdout", bytes, &mut events, &mut next)
                }
                CommandEvent::Stderr(bytes) => {
                    data_envelope("stderr", bytes, &mut events, &mut next)
                }
                CommandEvent::Pty(bytes) => data_envelope("pty", bytes, &mut events, &mut next),
                CommandEvent::End { exit_code } => envelope(
                    0,
                    &json!({"event": {"end": {
                        "exitCode": exit_code,
                        "exited": true,
                        "status": format!("exit status {exit_code}"),
                    }}}),
                ),
                CommandEvent::Failed(why) => {
                    trailer = json!({"error": {"code": "unavailable", "message": why}});
                    continue;
                }
            };
            if tx.send(Ok(frame)).await.is_err() {
                // The client went away; the command runs to its end (as in E2B).
                return;
            }
        }
        let _ = tx.send(Ok(envelope(FLAG_END_STREAM, &trailer))).await;
    });
    stream_response(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_output_of_one_kind_is_joined_into_one_data_envelope() {
        let (tx, mut rx) = mpsc::channel(8);
        tx.try_send(CommandEvent::Stdout(Bytes::from_static(b" world")))
            .unwrap();
        tx.try_send(CommandEvent::Stderr(Bytes::from_static(b"oops")))
            .unwrap();
        let mut next = None;
        let frame = data_envelope("stdout", Bytes::from_static(b"hello"), &mut rx, &mut next);
        let message = single_envelope(&frame).unwrap();
        assert_eq!(
            message,
            json!({"event": {"data": {"stdout": "aGVsbG8gd29ybGQ="}}})
        );
        assert!(matches!(next, Some(CommandEvent::Stderr(_))));
    }

    #[test]
    fn output_split_anywhere_is_encoded_as_if_whole() {
        let whole: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for sizes in [
            &[1usize, 1, 1, 997][..],
            &[2, 5, 993],
            &[3, 997],
            &[999, 1],
            &[1000],
        ] {
            let (tx, mut rx) = mpsc::channel(8);
            let mut at = sizes[0];
            for size in &sizes[1..] {
                tx.try_send(CommandEvent::Stdout(Bytes::copy_from_slice(
                    &whole[at..at + size],
                )))
                .unwrap();
                at += size;
            }
            let first = Bytes::copy_from_slice(&whole[..sizes[0]]);
            let frame = data_envelope("stdout", first, &mut rx, &mut None);
            let message = single_envelope(&frame).unwrap();
            let expected = base64::engine::general_purpose::STANDARD.encode(&whole);
            assert_eq!(message["event"]["data"]["stdout"], expected, "{sizes:?}");
        }
    }

    #[test]
    fn envelopes_round_trip_and_malformed_ones_are_refused() {
        let value = json!({"process": {"cmd": "/bin/bash"}});
        let bytes = envelope(0, &value);
        assert_eq!(bytes[0], 0);
        assert_eq!(single_envelope(&bytes).unwrap(), value);
        assert!(single_envelope(b"{}").is_err());
        let mut short = bytes.to_vec();
        short.pop();
        assert!(single_envelope(&short).is_err());
        let mut compressed = bytes.to_vec();
        compressed[0] = FLAG_COMPRESSED;
        assert_eq!(
            single_envelope(&compressed).unwrap_err().code,
            "unimplemented"
        );
    }
}
