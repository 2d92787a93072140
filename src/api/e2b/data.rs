//! E2B's data plane at `/e2b/sandbox`: envd's HTTP routes (`/health`, `/files`) and the code
//! interpreter's (`/execute`, `/contexts`), for the sandbox named by the `E2b-Sandbox-Id`
//! header (or a `{port}-{id}.{domain}` Host), the service by `E2b-Sandbox-Port` (49983 envd,
//! 49999 the code interpreter).
//!
//! These requests carry no API key. They are authorised by the sandbox's own token, which
//! create and connect return as `envdAccessToken` (and as `trafficAccessToken`): the SDKs
//! send it as `X-Access-Token`, and Python's code-interpreter client sends the traffic token
//! as `E2B-Traffic-Access-Token` on `/contexts`, where it sends no other. Either header is
//! checked against the sandbox's token; the project is the sandbox's own.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use axum::body::Body as HttpBody;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::{header as header_value, E2bError, E2bResult};
use crate::api::AppState;
use crate::auth::Project;
use crate::sandbox::commands::{FsFailure, HOME_DIR};
use crate::sandbox::{ExecOutput, Streamed};

pub const ENVD_PORT: u16 = 49983;
pub const JUPYTER_PORT: u16 = 49999;
/// The largest file `GET /files` serves.
const MAX_READ_BYTES: u64 = 512 * 1024 * 1024;
/// Mount points (the session's volume, twice, and /tmp): written into, never replaced.
const MOUNTS: [&str; 3] = ["/home/user", "/mnt/data", "/tmp"];
/// The kernel's filesystems: never written through the file API.
const KERNEL: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The sandbox a data-plane request is for, authorised, and the port it addressed.
pub struct Target {
    pub project: Project,
    pub id: String,
    pub port: u16,
}

impl Target {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Refuses a request for a route of the other service.
    pub fn require(&self, port: u16) -> E2bResult<()> {
        if self.port == port {
            return Ok(());
        }
        Err(E2bError::bad_request(format!(
            "this route is served on port {port} ({}), not on E2b-Sandbox-Port {}",
            service(port),
            self.port
        )))
    }
}

fn service(port: u16) -> &'static str {
    if port == ENVD_PORT {
        "envd"
    } else {
        "the code interpreter"
    }
}

/// The sandbox id and port from the `E2b-Sandbox-Id` / `E2b-Sandbox-Port` headers, else from
/// a `{port}-{id}.{domain}` Host.
pub(super) fn address(parts: &Parts) -> E2bResult<(String, u16)> {
    let headers = &parts.headers;
    let from_host = header_value(headers, "host").and_then(|host| {
        let label = host.split('.').next()?;
        let (port, id) = label.split_once('-')?;
        let port: u16 = port.parse().ok()?;
        (host.contains('.') && !id.is_empty()).then(|| (id.to_string(), port))
    });
    let id = match header_value(headers, "e2b-sandbox-id") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => match &from_host {
            Some((id, _)) => id.clone(),
            None => return Err(E2bError::bad_request(
                "missing E2b-Sandbox-Id header (the E2B SDKs send it when E2B_SANDBOX_URL is set)",
            )),
        },
    };
    let port = match header_value(headers, "e2b-sandbox-port") {
        Some(raw) => raw.parse::<u16>().map_err(|_| {
            E2bError::bad_request(format!("E2b-Sandbox-Port '{raw}' is not a port number"))
        })?,
        None => match &from_host {
            Some((_, port)) => *port,
            None => return Err(E2bError::bad_request(
                "missing E2b-Sandbox-Port header (49983 for envd, 49999 for the code interpreter)",
            )),
        },
    };
    if port != ENVD_PORT && port != JUPYTER_PORT {
        return Err(E2bError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "port {port} of sandbox {id} is not served: only {ENVD_PORT} (envd) and \
                 {JUPYTER_PORT} (the code interpreter) are"
            ),
        ));
    }
    Ok((id, port))
}

impl FromRequestParts<AppState> for Target {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> E2bResult<Self> {
        let (id, port) = address(parts)?;
        let token = header_value(&parts.headers, "x-access-token")
            .or_else(|| header_value(&parts.headers, "e2b-traffic-access-token"))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                E2bError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing X-Access-Token: send the envdAccessToken that create or connect returned",
                )
            })?;
        let mut project = state.containers.use_sandbox(&id, token).await?;
        // Paused with autoResume: this request resumes it.
        if project.is_none() && state.containers.auto_resume(&id, token).await? {
            project = state.containers.use_sandbox(&id, token).await?;
        }
        let project = project.ok_or_else(|| {
            // 502, as E2B's proxy answers for a sandbox that is gone: the SDKs then say the
            // sandbox probably timed out.
            E2bError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "sandbox {id} was not found (killed, timed out, or the token does not match)"
                ),
            )
        })?;
        Ok(Target { project, id, port })
    }
}

pub async fn health(target: Target) -> E2bResult<StatusCode> {
    target.require(ENVD_PORT)?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------------- paths

/// An absolute path inside the sandbox: a relative one is under /home/user; `.` and `..` are
/// resolved here (never above `/`).
pub fn sandbox_path(raw: &str) -> E2bResult<String> {
    if raw.is_empty() {
        return Err(E2bError::bad_request("path is empty"));
    }
    if raw.contains('\0') {
        return Err(E2bError::bad_request("path contains a NUL byte"));
    }
    let joined = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("{HOME_DIR}/{raw}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(E2bError::bad_request(format!(
                        "path '{raw}' leads outside the sandbox's filesystem"
                    )));
                }
            }
            part => parts.push(part),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// [`sandbox_path`], for a write. An E2B sandbox is a writable box (see
/// `sandbox::writable`): the user's permissions decide, except that the root, the mount points
/// themselves and the kernel's filesystems are never written here.
pub fn writable_path(raw: &str) -> E2bResult<String> {
    let path = sandbox_path(raw)?;
    let under =
        |dir: &str| path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'));
    if path == "/" || MOUNTS.contains(&path.as_str()) || KERNEL.iter().any(|dir| under(dir)) {
        return Err(E2bError::bad_request(format!(
            "path '{raw}' is not writable: the root, the mount points {} and {} are not",
            MOUNTS.join(", "),
            KERNEL.join(", ")
        )));
    }
    Ok(path)
}

/// envd's HTTP status for a file operation's failure.
fn fs_error(failure: FsFailure) -> E2bError {
    let status = match failure.code.as_str() {
        "not_found" => StatusCode::NOT_FOUND,
        "already_exists" => StatusCode::CONFLICT,
        "permission_denied" => StatusCode::FORBIDDEN,
        "invalid_argument" => StatusCode::BAD_REQUEST,
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    E2bError::new(status, failure.message)
}

pub fn sandbox_error(e: crate::sandbox::SandboxError) -> E2bError {
    tracing::warn!(error = %e, "e2b data plane");
    E2bError::new(StatusCode::BAD_GATEWAY, format!("the sandbox failed: {e}"))
}

// ----------------------------------------------------------------------------- /files

#[derive(Debug, Deserialize)]
pub struct FileQuery {
    path: Option<String>,
}

pub async fn read_file(
    State(state): State<AppState>,
    target: Target,
    Query(query): Query<FileQuery>,
) -> E2bResult<Response> {
    target.require(ENVD_PORT)?;
    let raw = query
        .path
        .ok_or_else(|| E2bError::bad_request("the path query parameter is required"))?;
    let path = sandbox_path(&raw)?;
    let bytes = state
        .sandbox
        .read_path(target.id(), &path, MAX_READ_BYTES)
        .await
        .map_err(sandbox_error)?
        .map_err(fs_error)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// `POST /files`: `multipart/form-data` (each `file` part's filename is its path when the
/// query has none) or the raw bytes (`application/octet-stream`) at `?path=`.
pub async fn write_file(
    State(state): State<AppState>,
    target: Target,
    Query(query): Query<FileQuery>,
    request: Request,
) -> E2bResult<Json<Vec<Value>>> {
    target.require(ENVD_PORT)?;
    let content_type = header_value(request.headers(), "content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if header_value(request.headers(), "content-encoding").is_some_and(|e| e != "identity") {
        return Err(E2bError::bad_request(
            "compressed uploads are not served: send the file uncompressed (gzip=False)",
        ));
    }
    let mut files: Vec<(String, Bytes)> = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| E2bError::bad_request(format!("invalid multipart body: {e}")))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| E2bError::bad_request(format!("invalid multipart body: {e}")))?
        {
            let name =
                match (&query.path, field.file_name()) {
                    (Some(path), _) => path.clone(),
                    (None, Some(name)) => name.to_string(),
                    (None, None) => return Err(E2bError::bad_request(
                        "a multipart file part needs a filename (its path) when ?path is absent",
                    )),
                };
            let bytes = field
                .bytes()
                .await
                .map_err(|e| E2bError::bad_request(format!("invalid multipart body: {e}")))?;
            files.push((name, bytes));
        }
    } else {
        let path = query.path.clone().ok_or_else(|| {
            E2bError::bad_request("the path query parameter is required for a raw upload")
        })?;
        let bytes = Bytes::from_request(request, &())
            .await
            .map_err(|e| E2bError::bad_request(format!("unreadable body: {e}")))?;
        files.push((path, bytes));
    }
    if files.is_empty() {
        return Err(E2bError::bad_request("no file in the request"));
    }
    let mut written = Vec::new();
    // Every path is checked before anything is written.
    let checked: Vec<(String, Bytes)> = files
        .into_iter()
        .map(|(raw, bytes)| writable_path(&raw).map(|p| (p, bytes)))
        .collect::<E2bResult<_>>()?;
    for (path, bytes) in checked {
        state
            .sandbox
            .write_path(target.id(), &path, &bytes)
            .await
            .map_err(sandbox_error)?
            .map_err(fs_error)?;
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        written.push(json!({"name": name, "type": "file", "path": path}));
    }
    Ok(Json(written))
}

// ----------------------------------------------------------------------------- contexts

/// A code context: E2B's SDKs make one per language by default and more on request.
#[derive(Debug, Clone)]
struct Context {
    id: String,
    language: String,
    cwd: String,
}

impl Context {
    fn json(&self) -> Value {
        json!({"id": self.id, "language": self.language, "cwd": self.cwd})
    }
}

/// Per sandbox: its contexts beyond the default ones, and how many cells it ran.
#[derive(Default)]
struct Kernels {
    contexts: HashMap<String, Vec<Context>>,
    executions: HashMap<String, u64>,
}

fn kernels() -> &'static Mutex<Kernels> {
    static KERNELS: OnceLock<Mutex<Kernels>> = OnceLock::new();
    KERNELS.get_or_init(Default::default)
}

/// Forgets a killed sandbox's contexts and counters.
pub fn forget(id: &str) {
    if let Ok(mut k) = kernels().lock() {
        k.contexts.remove(id);
        k.executions.remove(id);
    }
}

/// `python`, `javascript` and `bash`, as E2B's server names them (`js` -> `javascript`).
fn language(raw: Option<&str>) -> E2bResult<&'static str> {
    match raw.map(|l| l.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("python") | Some("python3") => Ok("python"),
        Some("bash") | Some("sh") => Ok("bash"),
        Some("js") | Some("javascript") | Some("node") => Ok("javascript"),
        Some(other) => Err(E2bError::bad_request(format!(
            "language '{other}' is not served here: python, javascript (js) and bash are"
        ))),
    }
}

fn default_context(language: &str) -> Context {
    Context {
        id: language.to_string(),
        language: language.to_string(),
        cwd: HOME_DIR.to_string(),
    }
}

fn find_context(sandbox: &str, id: &str) -> Option<Context> {
    if let Ok(language) = language(Some(id)) {
        if language == id {
            return Some(default_context(language));
        }
    }
    kernels()
        .lock()
        .ok()?
        .contexts
        .get(sandbox)?
        .iter()
        .find(|c| c.id == id)
        .cloned()
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateContext {
    language: Option<String>,
    cwd: Option<String>,
}

/// `POST /contexts`. Contexts of one language share the sandbox's interpreter (the README
/// says so): a context is a name, a language and a working directory.
pub async fn create_context(target: Target, body: Bytes) -> E2bResult<Json<Value>> {
    target.require(JUPYTER_PORT)?;
    let req: CreateContext = parse_json(&body)?;
    let language = language(req.language.as_deref())?;
    let cwd = match req.cwd {
        Some(cwd) => sandbox_path(&cwd)?,
        None => HOME_DIR.to_string(),
    };
    let context = Context {
        id: uuid::Uuid::new_v4().to_string(),
        language: language.to_string(),
        cwd,
    };
    if let Ok(mut k) = kernels().lock() {
        k.contexts
            .entry(target.id().to_string())
            .or_default()
            .push(context.clone());
    }
    Ok(Json(context.json()))
}

pub async fn list_contexts(target: Target) -> E2bResult<Json<Vec<Value>>> {
    target.require(JUPYTER_PORT)?;
    let mut all = vec![default_context("python").json()];
    if let Ok(k) = kernels().lock() {
        if let Some(contexts) = k.contexts.get(target.id()) {
            all.extend(contexts.iter().map(Context::json));
        }
    }
    Ok(Json(all))
}

pub async fn delete_context(target: Target, Path(id): Path<String>) -> E2bResult<StatusCode> {
    target.require(JUPYTER_PORT)?;
    let removed = kernels().lock().ok().is_some_and(|mut k| {
        let Some(contexts) = k.contexts.get_mut(target.id()) else {
            return false;
        };
        let before = contexts.len();
        contexts.retain(|c| c.id != id);
        before != contexts.len()
    });
    if !removed {
        return Err(context_not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /contexts/{id}/restart`: a Python context's variables are cleared (`%reset -f`).
pub async fn restart_context(
    State(state): State<AppState>,
    target: Target,
    Path(id): Path<String>,
) -> E2bResult<StatusCode> {
    target.require(JUPYTER_PORT)?;
    let context = find_context(target.id(), &id).ok_or_else(|| context_not_found(&id))?;
    if context.language == "python" {
        state
            .sandbox
            .exec(target.id(), "%reset -f", &CancellationToken::new())
            .await
            .map_err(sandbox_error)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn context_not_found(id: &str) -> E2bError {
    E2bError::new(StatusCode::NOT_FOUND, format!("context {id} not found"))
}

fn parse_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> E2bResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| E2bError::bad_request(format!("invalid request body: {e}")))
}

// ----------------------------------------------------------------------------- /execute

#[derive(Debug, Default, Deserialize)]
pub struct Execute {
    code: Option<String>,
    context_id: Option<String>,
    language: Option<String>,
    env_vars: Option<HashMap<String, String>>,
}

/// `POST /execute`: NDJSON, one object a line, each sent as the code produces it:
/// `stdout`/`stderr` (`text`, `timestamp` in ns), `result` (a MIME bundle), `error`,
/// `number_of_executions`, then `end_of_execution`.
pub async fn execute(
    State(state): State<AppState>,
    target: Target,
    body: Bytes,
) -> E2bResult<Response> {
    target.require(JUPYTER_PORT)?;
    let req: Execute = parse_json(&body)?;
    let code = req
        .code
        .ok_or_else(|| E2bError::bad_request("code is required"))?;
    if req.context_id.is_some() && req.language.is_some() {
        return Err(E2bError::bad_request(
            "give a context_id or a language, not both",
        ));
    }
    let context = match &req.context_id {
        Some(id) => find_context(target.id(), id).ok_or_else(|| context_not_found(id))?,
        None => default_context(language(req.language.as_deref())?),
    };
    let cell = match context.language.as_str() {
        "bash" => format!("%%bash\n{code}"),
        _ => code,
    };
    let javascript = context.language == "javascript";
    let env_vars = req.env_vars.unwrap_or_default();
    let (lines, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let session = target.id().to_string();
    let cell = Cell {
        code: cell,
        javascript,
        env_vars,
    };
    tokio::spawn(run_cell(state, target.project, session, cell, lines));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        HttpBody::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

type Lines = mpsc::Sender<Result<Bytes, std::io::Error>>;

async fn send(lines: &Lines, value: Value) -> bool {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    lines.send(Ok(Bytes::from(line))).await.is_ok()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Runs the cell, streaming its output as lines; a client that goes away cancels it.
/// A cell to run: its code, in which language, with which environment variables set meanwhile.
struct Cell {
    code: String,
    javascript: bool,
    env_vars: HashMap<String, String>,
}

async fn run_cell(state: AppState, project: Project, session: String, cell: Cell, lines: Lines) {
    let Cell {
        code: cell,
        javascript,
        env_vars,
    } = cell;
    let language = javascript.then_some("javascript");
    // Set for the Python interpreter (a JavaScript context keeps the environment it started with).
    let env_vars = if javascript { HashMap::new() } else { env_vars };
    let cancel = CancellationToken::new();
    if !env_vars.is_empty() {
        let set = format!(
            "import os as __e2b_os\n__e2b_env = {{k: __e2b_os.environ.get(k) for k in {keys}}}\n__e2b_os.environ.update({vars})",
            keys = json!(env_vars.keys().collect::<Vec<_>>()),
            vars = json!(env_vars),
        );
        if let Err(e) = state.sandbox.exec(&session, &set, &cancel).await {
            let _ = send(&lines, error_line("SandboxError", &e.to_string())).await;
            let _ = send(&lines, json!({"type": "end_of_execution"})).await;
            return;
        }
    }
    let (sink, mut streamed) = mpsc::unbounded_channel::<Streamed>();
    let exec = state
        .sandbox
        .exec_streaming(&session, &cell, language, &cancel, Some(sink));
    tokio::pin!(exec);
    let output = loop {
        tokio::select! {
            Some(event) = streamed.recv() => {
                if !send(&lines, streamed_line(event)).await {
                    cancel.cancel();
                }
            }
            output = &mut exec => break output,
            _ = lines.closed(), if !cancel.is_cancelled() => cancel.cancel(),
        }
    };
    while let Ok(event) = streamed.try_recv() {
        send(&lines, streamed_line(event)).await;
    }
    if !env_vars.is_empty() {
        let restore = "for __k, __v in __e2b_env.items():\n    if __v is None: __e2b_os.environ.pop(__k, None)\n    else: __e2b_os.environ[__k] = __v\ndel __e2b_env, __e2b_os";
        let _ = state
            .sandbox
            .exec(&session, restore, &CancellationToken::new())
            .await;
    }
    match output {
        Ok(output) => {
            // Files the code wrote or removed, in the container's file list as for any run.
            use crate::domain::containers::files;
            if let Err(e) = files::record_written(
                &state.db,
                &state.blobs,
                &state.sandbox,
                &project,
                &session,
                &output.files,
            )
            .await
            {
                tracing::warn!(error = %e, "recording an E2B sandbox's written files");
            }
            if let Err(e) =
                files::record_removed(&state.db, &state.blobs, &session, &output.removed).await
            {
                tracing::warn!(error = %e, "recording an E2B sandbox's removed files");
            }
            finish(&session, output, &lines).await
        }
        Err(e) => {
            send(&lines, error_line("SandboxError", &e.to_string())).await;
        }
    }
    send(&lines, json!({"type": "end_of_execution"})).await;
}

async fn finish(session: &str, output: ExecOutput, lines: &Lines) {
    // What was not streamed: a driver that does not stream (an older image) answers with all
    // of it here; a streaming one leaves these empty.
    for (name, text) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        if !text.is_empty() {
            send(
                lines,
                json!({"type": name, "text": text, "timestamp": now_ns()}),
            )
            .await;
        }
    }
    if let Some(text) = &output.result {
        send(
            lines,
            json!({"type": "result", "text": text, "is_main_result": true}),
        )
        .await;
    }
    // Figures the code showed or left open (displayed bundles came streamed).
    for png in &output.images {
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD.encode(png);
        send(
            lines,
            json!({"type": "result", "png": png, "text": "<Figure>", "is_main_result": false}),
        )
        .await;
    }
    if let Some(error) = &output.error {
        send(
            lines,
            json!({"type": "error", "name": error.ename, "value": error.evalue,
                   "traceback": error.traceback}),
        )
        .await;
    } else if output.timed_out {
        send(
            lines,
            error_line("TimeoutError", "the code ran past the time limit"),
        )
        .await;
    }
    let count = kernels()
        .lock()
        .map(|mut k| {
            let n = k.executions.entry(session.to_string()).or_default();
            *n += 1;
            *n
        })
        .unwrap_or(1);
    send(
        lines,
        json!({"type": "number_of_executions", "execution_count": count}),
    )
    .await;
}

fn error_line(name: &str, value: &str) -> Value {
    json!({"type": "error", "name": name, "value": value, "traceback": format!("{name}: {value}")})
}

/// A streamed piece of output as E2B's line: text with its timestamp, or a `result` bundle.
fn streamed_line(event: Streamed) -> Value {
    match event.name.as_str() {
        "stdout" | "stderr" => {
            json!({"type": event.name, "text": event.text, "timestamp": now_ns()})
        }
        _ => {
            let mut line = Map::new();
            line.insert("type".into(), "result".into());
            let mut extra = Map::new();
            for (mime, value) in event.bundle.unwrap_or_default() {
                let key = match mime.as_str() {
                    "text/plain" => "text",
                    "text/html" => "html",
                    "text/markdown" => "markdown",
                    "image/svg+xml" => "svg",
                    "image/png" => "png",
                    "image/jpeg" => "jpeg",
                    "application/pdf" => "pdf",
                    "text/latex" => "latex",
                    "application/json" => "json",
                    "application/javascript" => "javascript",
                    _ => {
                        extra.insert(mime, value);
                        continue;
                    }
                };
                line.insert(key.into(), value);
            }
            if !extra.is_empty() {
                line.insert("extra".into(), Value::Object(extra));
            }
            line.insert("is_main_result".into(), event.main.into());
            Value::Object(line)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_under_home_and_dots_resolve() {
        assert_eq!(sandbox_path("a.txt").unwrap(), "/home/user/a.txt");
        assert_eq!(sandbox_path("/tmp/./x/../y").unwrap(), "/tmp/y");
        assert_eq!(sandbox_path("../../etc/passwd").unwrap(), "/etc/passwd");
        assert!(sandbox_path("/../../x").is_err());
        assert!(sandbox_path("").is_err());
        assert_eq!(writable_path("/etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(writable_path("/workspace/a").unwrap(), "/workspace/a");
        assert!(writable_path("/home/user").is_err());
        assert!(writable_path("/").is_err());
        assert!(writable_path("/proc/1/mem").is_err());
        assert!(writable_path("/sys").is_err());
        assert_eq!(writable_path("/home/userx/a").unwrap(), "/home/userx/a");
        assert_eq!(writable_path("d/e.txt").unwrap(), "/home/user/d/e.txt");
    }

    #[test]
    fn bundles_become_e2b_results() {
        let mut bundle = Map::new();
        bundle.insert("text/plain".into(), "2".into());
        bundle.insert("image/png".into(), "iVBO".into());
        bundle.insert("application/vnd.x".into(), "y".into());
        let line = streamed_line(Streamed {
            name: "result".into(),
            bundle: Some(bundle),
            main: true,
            ..Default::default()
        });
        assert_eq!(line["type"], "result");
        assert_eq!(line["text"], "2");
        assert_eq!(line["png"], "iVBO");
        assert_eq!(line["extra"]["application/vnd.x"], "y");
        assert_eq!(line["is_main_result"], true);
    }
}
