//! Run executor benchmark: runs/s and latency of streamed runs against a running `assistd`,
//! next to the raw round trip of the scripted upstream model it calls.
//!
//! Started by `bench/runs/run.sh` (see bench/README.md), which starts Postgres and the server
//! with `ASSISTD_UPSTREAM_BASE_URL=http://127.0.0.1:UPSTREAM_PORT/v1`. This binary then:
//!
//! 1. serves a zero-latency OpenAI-compatible upstream on UPSTREAM_PORT: a streamed chat
//!    completion answers in a few text chunks, with usage in the last chunk and `[DONE]`;
//!    when the first user message starts with `[code]` (and the last message is not a tool
//!    result) it instead calls `code_interpreter` with `{"code": "print(1)"}`. It notes when
//!    each request arrives, keyed by the `tag=` in the user message, so the client can split
//!    a run's latency into before / between / after its model calls;
//! 2. for each concurrency level, creates runs with `stream: true` and reads their SSE until
//!    `event: done`: runs without code on fresh threads (one per run), then runs with one
//!    `print(1)` on one thread per virtual client, reused run after run (its first run, which
//!    takes a sandbox from the warm pool, is a warm-up; the answer message is deleted after
//!    each run, untimed but inside the wall clock, so the prompt does not grow);
//! 3. measures at the same concurrency the raw upstream round trip (one streamed completion,
//!    or two chained ones for the code scenario), and prints throughput, p50/p99, the
//!    overhead (run − upstream), a client-side phase breakdown and CPU time per run by process.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;
use futures::StreamExt;
use serde_json::{json, Value};

#[derive(Parser, Debug, Clone)]
#[command(about = "assistd run executor benchmark (see bench/README.md)")]
struct Args {
    /// The server's base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    base: String,
    /// Port the scripted upstream listens on (loopback); the server must point at it.
    #[arg(long)]
    upstream_port: u16,
    #[arg(long, default_value = "sk-bench")]
    key: String,
    /// Concurrency levels of runs without code.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    levels: Vec<usize>,
    /// Concurrency levels of runs with one `print(1)` (one thread and sandbox per client).
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    code_levels: Vec<usize>,
    /// Measured seconds per configuration.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Measured seconds of each upstream baseline.
    #[arg(long, default_value_t = 5.0)]
    baseline_seconds: f64,
    /// Upper bound on fresh threads created for one level of runs without code.
    #[arg(long, default_value_t = 20_000)]
    max_runs: usize,
    /// Warm sandboxes the server keeps (ASSISTD_SANDBOX_POOL_SIZE): measurement waits for a full pool.
    #[arg(long, default_value_t = 2)]
    pool_size: usize,
    /// Server process, for CPU accounting.
    #[arg(long)]
    server_pid: Option<i32>,
    /// The Postgres cluster directory (its postmaster.pid), for CPU accounting.
    #[arg(long)]
    pg_dir: Option<PathBuf>,
    /// The server's database, to count its Postgres transactions per run (pg_stat_database).
    #[arg(long)]
    database_url: Option<String>,
    /// Pause between a code client's runs (model "think time"); 0 runs them back to back.
    #[arg(long, default_value_t = 0)]
    code_think_ms: u64,
}

// ------------------------------------------------------------------------------ upstream

#[derive(Default)]
struct Upstream {
    requests: AtomicU64,
    calls: AtomicU64,
    /// Arrival times of requests, by the `tag=` of their user message.
    seen: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Upstream {
    fn take(&self, tag: &str) -> Vec<Instant> {
        self.seen
            .lock()
            .expect("upstream map")
            .remove(tag)
            .unwrap_or_default()
    }
}

async fn serve_upstream(up: Arc<Upstream>, port: u16) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(up);
    // TCP_NODELAY, so that the upstream's own writes never wait on delayed ACKs.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bench-runs: upstream stopped: {e}");
        }
    });
    Ok(())
}

async fn completions(State(up): State<Arc<Upstream>>, body: Bytes) -> Response {
    let arrived = Instant::now();
    up.requests.fetch_add(1, Ordering::Relaxed);
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                format!("bad json: {e}"),
            )
                .into_response()
        }
    };
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let last_role = messages
        .last()
        .and_then(|m| m["role"].as_str())
        .unwrap_or("");
    let user = messages
        .iter()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    if let Some(tag) = user.split_whitespace().find_map(|w| w.strip_prefix("tag=")) {
        up.seen
            .lock()
            .expect("upstream map")
            .entry(tag.to_string())
            .or_default()
            .push(arrived);
    }
    let model = req["model"].as_str().unwrap_or("bench-model");
    let sse = if user.starts_with("[code]") && last_role != "tool" {
        let n = up.calls.fetch_add(1, Ordering::Relaxed);
        tool_call_sse(model, &format!("call_bench{n:08}"))
    } else if last_role == "tool" {
        text_sse(model, &["The ", "result ", "is ", "1."])
    } else {
        text_sse(model, &["Hello ", "from ", "the ", "bench."])
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        sse,
    )
        .into_response()
}

fn chunk(model: &str, choices: Value, usage: Value) -> String {
    let c = json!({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": model, "choices": choices, "usage": usage,
    });
    format!("data: {c}\n\n")
}

fn usage() -> Value {
    json!({"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128})
}

fn text_sse(model: &str, parts: &[&str]) -> String {
    let mut s = chunk(
        model,
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        Value::Null,
    );
    for p in parts {
        s += &chunk(
            model,
            json!([{"index": 0, "delta": {"content": p}, "finish_reason": null}]),
            Value::Null,
        );
    }
    s += &chunk(
        model,
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        Value::Null,
    );
    s += &chunk(model, json!([]), usage());
    s + "data: [DONE]\n\n"
}

fn tool_call_sse(model: &str, call_id: &str) -> String {
    let mut s = chunk(
        model,
        json!([{"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": call_id, "type": "function",
             "function": {"name": "code_interpreter", "arguments": ""}}]}, "finish_reason": null}]),
        Value::Null,
    );
    s += &chunk(
        model,
        json!([{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"code\": \"print(1)\"}"}}]}, "finish_reason": null}]),
        Value::Null,
    );
    s += &chunk(
        model,
        json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        Value::Null,
    );
    s += &chunk(model, json!([]), usage());
    s + "data: [DONE]\n\n"
}

// ------------------------------------------------------------------------------ client

#[derive(Clone)]
struct Ctx {
    http: reqwest::Client,
    base: String,
    key: String,
    assistant: String,
    upstream_url: String,
    up: Arc<Upstream>,
    pg: Option<sqlx::PgPool>,
}

impl Ctx {
    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.key)
            .header("OpenAI-Beta", "assistants=v2")
    }

    async fn api_json(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self
            .api(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {v}");
        Ok(v)
    }

    async fn new_thread(&self, content: &str) -> anyhow::Result<String> {
        let v = self
            .api_json(
                "/v1/threads",
                json!({"messages": [{"role": "user", "content": content}]}),
            )
            .await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }
}

/// One streamed run as the client saw it; times in ms from just before the POST.
#[derive(Debug, Default, Clone)]
struct Sample {
    headers: f64,
    /// Arrival of each upstream request of this run.
    upstream: Vec<f64>,
    first_delta: Option<f64>,
    /// The longest wait between two consecutive SSE reads, and the event that ended it.
    max_gap: f64,
    gap_before: String,
    done: f64,
    message_id: Option<String>,
    error: Option<String>,
}

async fn one_run(ctx: &Ctx, thread: &str, tag: &str) -> Sample {
    let request = ctx
        .api(reqwest::Method::POST, &format!("/v1/threads/{thread}/runs"))
        .json(&json!({"assistant_id": ctx.assistant, "stream": true}));
    streamed(ctx, request, tag, |s, name, data, now| match name {
        "thread.message.created" => {
            s.message_id = serde_json::from_str::<Value>(data)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string));
            Flow::More
        }
        "thread.message.delta" if s.first_delta.is_none() => {
            s.first_delta = Some(now);
            Flow::More
        }
        "thread.run.completed" => Flow::Completed,
        "thread.run.failed"
        | "thread.run.incomplete"
        | "thread.run.cancelled"
        | "thread.run.expired"
        | "error" => Flow::Failed,
        "done" => {
            s.done = now;
            Flow::More
        }
        _ => Flow::More,
    })
    .await
}

/// One streamed response (`POST /v1/responses`), its own backing thread made by the server.
async fn one_response(ctx: &Ctx, tag: &str) -> Sample {
    let request = ctx
        .api(reqwest::Method::POST, "/v1/responses")
        .json(&json!({
            "model": "bench-model", "stream": true,
            "instructions": "You are a helpful data analyst.",
            "input": format!("[text] tag={tag} Say hello."),
        }));
    streamed(ctx, request, tag, |s, name, _, now| match name {
        "response.output_text.delta" if s.first_delta.is_none() => {
            s.first_delta = Some(now);
            Flow::More
        }
        "response.completed" => {
            s.done = now;
            Flow::Completed
        }
        "response.failed" | "response.incomplete" | "error" => Flow::Failed,
        _ => Flow::More,
    })
    .await
}

/// What an SSE event meant to the reader.
enum Flow {
    More,
    Completed,
    Failed,
}

/// Sends `request` and reads its SSE stream to the end, timing it; `on_event` reads each
/// event (name, data, ms since the POST) into the sample.
async fn streamed(
    ctx: &Ctx,
    request: reqwest::RequestBuilder,
    tag: &str,
    mut on_event: impl FnMut(&mut Sample, &str, &str, f64) -> Flow,
) -> Sample {
    let t0 = Instant::now();
    let mut s = Sample::default();
    let ms = |t: Instant| t.saturating_duration_since(t0).as_secs_f64() * 1e3;
    let mut resp = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            s.error = Some(format!("request: {e}"));
            return s;
        }
    };
    s.headers = ms(Instant::now());
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        s.error = Some(format!("{status}: {body}"));
        return s;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut completed = false;
    let mut failure = None;
    let mut last_read = s.headers;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                failure = Some(format!("stream: {e}"));
                break;
            }
        };
        let now = Instant::now();
        let gap = ms(now) - last_read;
        last_read = ms(now);
        let mut first_of_read = true;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = find(&buf, b"\n\n") {
            let event: Vec<u8> = buf.drain(..pos + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let mut name = "";
            let mut data = "";
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = v.trim();
                }
            }
            if first_of_read {
                first_of_read = false;
                if gap > s.max_gap {
                    s.max_gap = gap;
                    s.gap_before = name.to_string();
                }
            }
            match on_event(&mut s, name, data, ms(now)) {
                Flow::More => {}
                Flow::Completed => completed = true,
                Flow::Failed => failure = Some(format!("{name}: {}", truncate(data, 300))),
            }
        }
    }
    if s.done == 0.0 {
        s.done = ms(Instant::now());
    }
    s.upstream = ctx.up.take(tag).into_iter().map(ms).collect();
    if !completed {
        s.error =
            Some(failure.unwrap_or_else(|| "stream ended without its completed event".into()));
    }
    s
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The body the server sends upstream, roughly: system prompt, one user message, the tool.
fn baseline_body(code: bool) -> Value {
    let system = "You can run Python with the `code_interpreter` tool. Code runs in a persistent, \
Jupyter-like session: variables, imports and files survive between calls. The value of a trailing expression \
is shown. The working directory is /mnt/data, which holds the user's files. Charts drawn with matplotlib are \
shown to the user automatically. To give the user a file, save it under /mnt/data and link it in your answer \
as sandbox:/mnt/data/<filename>. The sandbox has no internet access.";
    let user = if code {
        "[code] baseline"
    } else {
        "[text] baseline"
    };
    json!({
        "model": "bench-model",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "stream": true,
        "stream_options": {"include_usage": true},
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "tools": [{"type": "function", "function": {"name": "code_interpreter",
            "description": "Execute Python code in a persistent sandbox and return its output.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string",
                "description": "The Python source to run."}}, "required": ["code"]}}}],
    })
}

/// One streamed completion straight to the upstream, read to `[DONE]`.
async fn upstream_call(ctx: &Ctx, body: &Value) -> anyhow::Result<()> {
    let mut resp = ctx
        .http
        .post(&ctx.upstream_url)
        .bearer_auth("sk-upstream")
        .json(body)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "upstream {}", resp.status());
    let mut tail: Vec<u8> = vec![];
    while let Some(c) = resp.chunk().await? {
        tail.extend_from_slice(&c);
    }
    anyhow::ensure!(find(&tail, b"[DONE]").is_some(), "no [DONE]");
    Ok(())
}

/// The raw upstream round trip(s) a run makes: one call, or a tool call then the answer.
async fn baseline_once(ctx: &Ctx, code: bool) -> anyhow::Result<()> {
    let first = baseline_body(code);
    upstream_call(ctx, &first).await?;
    if code {
        let mut second = first;
        let msgs = second["messages"].as_array_mut().expect("messages");
        msgs.push(
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_b",
            "type": "function", "function": {"name": "code_interpreter",
            "arguments": "{\"code\": \"print(1)\"}"}}]}),
        );
        msgs.push(json!({"role": "tool", "tool_call_id": "call_b", "content": "1\n"}));
        upstream_call(ctx, &second).await?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------ measurement

#[derive(Debug, Default, Clone)]
struct Stats {
    n: usize,
    errors: usize,
    first_error: Option<String>,
    rate: f64,
    p50: f64,
    p99: f64,
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v
}

fn stats(latencies: Vec<f64>, errors: usize, first_error: Option<String>, secs: f64) -> Stats {
    let n = latencies.len();
    let l = sorted(latencies);
    Stats {
        n,
        errors,
        first_error,
        rate: n as f64 / secs,
        p50: pct(&l, 0.5),
        p99: pct(&l, 0.99),
    }
}

async fn measure_baseline(ctx: &Ctx, conc: usize, secs: f64, code: bool) -> Stats {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..conc {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            let mut errs = 0;
            let mut first = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                match baseline_once(&ctx, code).await {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                    Err(e) => {
                        errs += 1;
                        first.get_or_insert(e.to_string());
                    }
                }
            }
            (lat, errs, first)
        }));
    }
    let mut all = vec![];
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (l, e, f) = t.await.expect("baseline task");
        all.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    stats(all, errors, first_error, started.elapsed().as_secs_f64())
}

/// Work for the run workers: fresh threads (no code), or each worker's own thread (code).
enum Work {
    Fresh(Arc<Mutex<VecDeque<(String, String)>>>),
    Own(Vec<(String, String)>),
    /// Responses, each with a new tag from this prefix and counter (no thread beforehand).
    Responses(String, Arc<AtomicUsize>),
}

struct Measured {
    stats: Stats,
    samples: Vec<Sample>,
}

async fn measure_runs(ctx: &Ctx, conc: usize, secs: f64, work: &Work, think: Duration) -> Measured {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = vec![];
    for w in 0..conc {
        let ctx = ctx.clone();
        let (queue, own, responses) = match work {
            Work::Fresh(q) => (Some(q.clone()), None, None),
            Work::Own(threads) => (None, Some(threads[w].clone()), None),
            Work::Responses(prefix, n) => (None, None, Some((prefix.clone(), n.clone()))),
        };
        tasks.push(tokio::spawn(async move {
            let mut samples = vec![];
            while Instant::now() < deadline {
                if let Some((prefix, n)) = &responses {
                    let tag = format!("{prefix}{}", n.fetch_add(1, Ordering::Relaxed));
                    samples.push(one_response(&ctx, &tag).await);
                    continue;
                }
                let (thread, tag) = match (&queue, &own) {
                    (Some(q), _) => match q.lock().expect("queue").pop_front() {
                        Some(t) => t,
                        None => break,
                    },
                    (None, Some(t)) => t.clone(),
                    _ => break,
                };
                let s = one_run(&ctx, &thread, &tag).await;
                if own.is_some() {
                    if let Some(m) = &s.message_id {
                        // Keeps the reused thread's history (and so the prompt) from growing.
                        let _ = ctx
                            .api(
                                reqwest::Method::DELETE,
                                &format!("/v1/threads/{thread}/messages/{m}"),
                            )
                            .send()
                            .await;
                    }
                }
                let failed = s.error.is_some();
                samples.push(s);
                if failed && own.is_some() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else if own.is_some() && !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
            }
            samples
        }));
    }
    let mut samples = vec![];
    for t in tasks {
        samples.extend(t.await.expect("run task"));
    }
    let secs = started.elapsed().as_secs_f64();
    let errors = samples.iter().filter(|s| s.error.is_some()).count();
    let first_error = samples.iter().find_map(|s| s.error.clone());
    let ok: Vec<Sample> = samples.into_iter().filter(|s| s.error.is_none()).collect();
    let stats = stats(
        ok.iter().map(|s| s.done).collect(),
        errors,
        first_error,
        secs,
    );
    Measured { stats, samples: ok }
}

async fn create_threads(ctx: &Ctx, prefix: &str, from: usize, n: usize) -> Vec<(String, String)> {
    futures::stream::iter(from..from + n)
        .map(|i| {
            let ctx = ctx.clone();
            let tag = format!("{prefix}{i}");
            async move {
                let content = if prefix.starts_with('c') {
                    format!("[code] tag={tag} Run print(1).")
                } else {
                    format!("[text] tag={tag} Say hello.")
                };
                ctx.new_thread(&content).await.map(|id| (id, tag))
            }
        })
        .buffer_unordered(16)
        .filter_map(|r| async move {
            match r {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("bench-runs: creating a thread failed: {e}");
                    None
                }
            }
        })
        .collect()
        .await
}

// ------------------------------------------------------------------------------ CPU and metrics

/// CPU ticks (1/100 s) by process group at one instant, plus the machine's busy and total ticks.
#[derive(Default, Clone)]
struct Cpu {
    by_pid: HashMap<i32, (&'static str, u64)>,
    busy: u64,
    total: u64,
}

fn cpu_snapshot(server: Option<i32>, postmaster: Option<i32>) -> Cpu {
    let mut cpu = Cpu::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
        if let Some(line) = stat.lines().next() {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            cpu.total = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            cpu.busy = cpu.total - idle;
        }
    }
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return cpu;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = &stat[stat.find('(').map_or(0, |i| i + 1)..close];
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // Fields after the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14);
        // the children's times count the short-lived processes (docker exec, runc) a parent reaped.
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
        let (Some(ppid), Some(ut), Some(st), Some(cut), Some(cst)) = (
            f.get(1).and_then(|x| x.parse::<i32>().ok()),
            num(11),
            num(12),
            num(13),
            num(14),
        ) else {
            continue;
        };
        let group = if Some(pid) == server {
            "server"
        } else if pid == me {
            "bench"
        } else if postmaster.is_some() && (Some(pid) == postmaster || Some(ppid) == postmaster) {
            "postgres"
        } else if comm == "dockerd" || comm.starts_with("containerd") || comm == "runc" {
            "docker"
        } else if uid_of(pid) == Some(10001) {
            "sandbox"
        } else {
            continue;
        };
        cpu.by_pid.insert(pid, (group, ut + st + cut + cst));
    }
    cpu
}

fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
}

/// CPU ms by group between two snapshots, the machine's busy share, and what nobody listed used.
struct CpuUse {
    ms: HashMap<&'static str, f64>,
    busy_pct: f64,
    other_ms: f64,
}

fn cpu_diff(a: &Cpu, b: &Cpu) -> CpuUse {
    let mut ms: HashMap<&'static str, f64> = HashMap::new();
    for (pid, (group, after)) in &b.by_pid {
        let before = a.by_pid.get(pid).map_or(0, |(_, t)| *t);
        *ms.entry(group).or_default() += after.saturating_sub(before) as f64 * 10.0;
    }
    let busy = b.busy.saturating_sub(a.busy) as f64;
    let total = b.total.saturating_sub(a.total).max(1) as f64;
    let known: f64 = ms.values().sum();
    CpuUse {
        busy_pct: 100.0 * busy / total,
        other_ms: (busy * 10.0 - known).max(0.0),
        ms,
    }
}

/// The database's committed + rolled back transactions and rows written so far.
async fn pg_counters(ctx: &Ctx) -> Option<(i64, i64)> {
    let pg = ctx.pg.as_ref()?;
    sqlx::query_as::<_, (i64, i64)>(
        "SELECT (xact_commit + xact_rollback)::bigint,
                (tup_inserted + tup_updated + tup_deleted)::bigint
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pg)
    .await
    .ok()
}

/// Selected counters of the server's /metrics, summed over labels.
async fn scrape(ctx: &Ctx) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(resp) = ctx.http.get(format!("{}/metrics", ctx.base)).send().await else {
        return out;
    };
    let Ok(text) = resp.text().await else {
        return out;
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.rsplitn(2, ' ');
        let (Some(value), Some(key)) = (parts.next(), parts.next()) else {
            continue;
        };
        let name = key.split('{').next().unwrap_or(key);
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(name.to_string()).or_default() += v;
        }
    }
    out
}

fn mean_ms(a: &HashMap<String, f64>, b: &HashMap<String, f64>, name: &str) -> Option<f64> {
    let d = |k: String| b.get(&k).copied().unwrap_or(0.0) - a.get(&k).copied().unwrap_or(0.0);
    let count = d(format!("{name}_count"));
    (count > 0.0).then(|| 1e3 * d(format!("{name}_sum")) / count)
}

async fn wait_for_pool(ctx: &Ctx, want: usize) {
    if want == 0 {
        return;
    }
    let started = Instant::now();
    loop {
        let m = scrape(ctx).await;
        let pooled = m
            .get("assistd_sandbox_sessions_pooled")
            .copied()
            .unwrap_or(0.0);
        if pooled as usize >= want {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            eprintln!("bench-runs: the warm pool has {pooled} of {want} sandboxes after 300 s; measuring anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The last container's libraries finish importing just before it is pooled; let it settle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

// ------------------------------------------------------------------------------ report

struct Row {
    scenario: &'static str,
    conc: usize,
    runs: Stats,
    base: Stats,
    /// p50 of each phase (ms): headers, to first upstream call, between calls, after last call.
    phases: [f64; 4],
    cpu: CpuUse,
    code_exec_ms: Option<f64>,
    upstream_open_ms: Option<f64>,
    /// p50 of each run's longest pause between SSE reads, the event after it most often, and
    /// the share of runs with a pause over 30 ms.
    gap: (f64, String, f64),
    /// Postgres transactions and rows written per run, from pg_stat_database.
    pg_per_run: Option<(f64, f64)>,
}

fn gaps(samples: &[Sample]) -> (f64, String, f64) {
    let p50 = pct(&sorted(samples.iter().map(|s| s.max_gap).collect()), 0.5);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for s in samples {
        *counts.entry(s.gap_before.as_str()).or_default() += 1;
    }
    let top = counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(e, _)| e.to_string())
        .unwrap_or_default();
    let long = samples.iter().filter(|s| s.max_gap > 30.0).count();
    (p50, top, 100.0 * long as f64 / samples.len().max(1) as f64)
}

fn phases(samples: &[Sample]) -> [f64; 4] {
    let p = |f: &dyn Fn(&Sample) -> Option<f64>| {
        pct(&sorted(samples.iter().filter_map(f).collect()), 0.5)
    };
    [
        p(&|s| Some(s.headers)),
        p(&|s| s.upstream.first().copied()),
        p(&|s| (s.upstream.len() >= 2).then(|| s.upstream[s.upstream.len() - 1] - s.upstream[0])),
        p(&|s| s.upstream.last().map(|u| s.done - u)),
    ]
}

#[allow(clippy::too_many_arguments)]
async fn measure_level(
    ctx: &Ctx,
    args: &Args,
    postmaster: Option<i32>,
    scenario: &'static str,
    conc: usize,
    work: &Work,
) -> Row {
    let think = if scenario == "code" {
        Duration::from_millis(args.code_think_ms)
    } else {
        Duration::ZERO
    };
    let x0 = pg_counters(ctx).await;
    let m0 = scrape(ctx).await;
    let c0 = cpu_snapshot(args.server_pid, postmaster);
    let measured = measure_runs(ctx, conc, args.seconds, work, think).await;
    let c1 = cpu_snapshot(args.server_pid, postmaster);
    let m1 = scrape(ctx).await;
    let base = measure_baseline(ctx, conc, args.baseline_seconds, scenario == "code").await;
    // Read after the baseline: backends report their counters to pg_stat_database lazily.
    let x1 = pg_counters(ctx).await;
    let n = measured.stats.n.max(1) as f64;
    let pg_per_run = x0
        .zip(x1)
        .map(|(a, b)| ((b.0 - a.0) as f64 / n, (b.1 - a.1) as f64 / n));
    Row {
        scenario,
        conc,
        phases: phases(&measured.samples),
        gap: gaps(&measured.samples),
        runs: measured.stats,
        base,
        cpu: cpu_diff(&c0, &c1),
        code_exec_ms: mean_ms(&m0, &m1, "assistd_code_execution_seconds"),
        upstream_open_ms: mean_ms(&m0, &m1, "assistd_upstream_call_duration_seconds"),
        pg_per_run,
    }
}

fn print_row_line(r: &Row) {
    let overhead = r.runs.p50 - r.base.p50;
    println!(
        "{:<8} {:>4} {:>7} {:>9.1} {:>8.2} {:>8.2} {:>10.1} {:>8.2} {:>8.2} {:>9.2} {:>7.3} {:>6}",
        r.scenario,
        r.conc,
        r.runs.n,
        r.runs.rate,
        r.runs.p50,
        r.runs.p99,
        r.base.rate,
        r.base.p50,
        r.base.p99,
        overhead,
        r.runs.rate / r.base.rate,
        r.runs.errors,
    );
}

fn report(rows: &[Row], args: &Args) -> bool {
    println!();
    println!(
        "runs: POST /v1/threads/{{id}}/runs stream=true, read to `event: done`; {} s per level; \
         upstream: the same client straight to the scripted upstream, {} s per level",
        args.seconds, args.baseline_seconds
    );
    println!(
        "no-code runs use a fresh thread each; code runs reuse one warm thread per client (answer deleted after each run, inside the wall clock)"
    );
    if args.code_think_ms > 0 {
        println!("code clients pause {} ms between runs", args.code_think_ms);
    }
    println!();
    println!(
        "{:<8} {:>4} {:>7} {:>9} {:>8} {:>8} {:>10} {:>8} {:>8} {:>9} {:>7} {:>6}",
        "scenario",
        "conc",
        "runs",
        "runs/s",
        "p50 ms",
        "p99 ms",
        "upstream/s",
        "up p50",
        "up p99",
        "ovh p50",
        "ratio",
        "errors"
    );
    for r in rows {
        print_row_line(r);
    }
    println!();
    println!("(upstream = one streamed completion for no-code, two chained ones for code; ovh p50 = run p50 - upstream p50; ratio = runs/s / upstream/s)");
    println!();
    println!(
        "where a run's time goes (client-side p50s, ms from just before the POST) and CPU per run:"
    );
    println!(
        "{:<8} {:>4} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}",
        "scenario", "conc", "headers", "->model1", "model1->2", "last->done", "exec*", "up-open*",
        "server", "pg", "bench", "docker", "sandbox", "other", "busy%"
    );
    for r in rows {
        let n = r.runs.n.max(1) as f64;
        let per = |g: &str| r.cpu.ms.get(g).copied().unwrap_or(0.0) / n;
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
        println!(
            "{:<8} {:>4} {:>8.2} {:>9.2} {:>9} {:>9.2} {:>9} {:>9} | {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>6.0}",
            r.scenario,
            r.conc,
            r.phases[0],
            r.phases[1],
            if r.phases[2].is_nan() { "-".into() } else { format!("{:.2}", r.phases[2]) },
            r.phases[3],
            opt(r.code_exec_ms),
            opt(r.upstream_open_ms),
            per("server"),
            per("postgres"),
            per("bench"),
            per("docker"),
            per("sandbox"),
            r.cpu.other_ms / n,
            r.cpu.busy_pct,
        );
    }
    println!();
    println!("headers: POST -> response headers; ->model1: POST -> first upstream request arrives; model1->2: first -> second upstream request (code: tool step + sandbox exec);");
    println!("last->done: last upstream request arrives -> `event: done`; * server-side means from /metrics: exec = sandbox execution, up-open = upstream request -> response headers.");
    println!("CPU columns: CPU ms per completed run (server process, its Postgres cluster, this load generator + upstream, dockerd/containerd, sandbox processes, anything else on the machine); busy% = machine CPU busy.");
    println!();
    println!(
        "longest pause between two SSE reads of a run (p50, and the event most often after it):"
    );
    for r in rows {
        println!(
            "{:<8} {:>4}  {:>7.2} ms  before {} ({:.0}% of runs with a pause > 30 ms)",
            r.scenario, r.conc, r.gap.0, r.gap.1, r.gap.2
        );
    }
    println!();
    println!("Postgres per run (pg_stat_database; includes the server's 1 s housekeeping and, for code, the untimed message delete):");
    for r in rows {
        if let Some((x, w)) = r.pg_per_run {
            println!(
                "{:<8} {:>4}  {:>6.1} transactions, {:>6.1} rows written",
                r.scenario, r.conc, x, w
            );
        }
    }
    for r in rows
        .iter()
        .filter(|r| r.runs.errors > 0 || r.base.errors > 0)
    {
        println!(
            "errors in {} c={}: runs: {:?}; upstream: {:?}",
            r.scenario, r.conc, r.runs.first_error, r.base.first_error
        );
    }

    let text: Vec<&Row> = rows.iter().filter(|r| r.scenario == "no-code").collect();
    let best = text.iter().map(|r| r.runs.rate).fold(0.0, f64::max);
    let c1 = text.iter().find(|r| r.conc == 1).or(text.first());
    let overhead = c1.map_or(f64::NAN, |r| r.runs.p50 - r.base.p50);
    let errors: usize = rows.iter().map(|r| r.runs.errors).sum();
    let rate_ok = best >= 200.0;
    let ovh_ok = overhead <= 20.0;
    println!();
    println!(
        "goal: >= 200 runs/s without code (best level): {best:.1} -> {}",
        if rate_ok { "met" } else { "MISSED" }
    );
    println!(
        "goal: p50 overhead <= 20 ms (no code, c={}): {overhead:.2} ms -> {}",
        c1.map_or(0, |r| r.conc),
        if ovh_ok { "met" } else { "MISSED" }
    );
    // Responses beside runs, level by level: rate and overhead within 10 % of a run's.
    let mut responses_ok = true;
    for r in rows.iter().filter(|r| r.scenario == "response") {
        let Some(run) = text.iter().find(|t| t.conc == r.conc) else {
            continue;
        };
        let rate_ratio = r.runs.rate / run.runs.rate;
        let (ovh_run, ovh_resp) = (run.runs.p50 - run.base.p50, r.runs.p50 - r.base.p50);
        // Overheads under a millisecond apart count as equal: 10 % of a tiny figure is noise.
        let ovh_ok = ovh_resp <= ovh_run * 1.1 || ovh_resp - ovh_run < 1.0;
        let ok = rate_ratio >= 0.9 && ovh_ok;
        responses_ok &= ok;
        println!(
            "goal: responses within 10% of runs (c={}): {:.1} vs {:.1} /s (ratio {rate_ratio:.3}), overhead p50 {ovh_resp:.2} vs {ovh_run:.2} ms -> {}",
            r.conc,
            r.runs.rate,
            run.runs.rate,
            if ok { "met" } else { "MISSED" }
        );
    }
    if errors > 0 {
        println!("{errors} runs did not complete (see above)");
    }
    rate_ok && ovh_ok && responses_ok && errors == 0
}

// ------------------------------------------------------------------------------ main

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let up = Arc::new(Upstream::default());
    serve_upstream(up.clone(), args.upstream_port).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(300))
        .build()?;
    let mut ctx = Ctx {
        http,
        base: args.base.trim_end_matches('/').to_string(),
        key: args.key.clone(),
        assistant: String::new(),
        upstream_url: format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            args.upstream_port
        ),
        up,
        pg: None,
    };
    if let Some(url) = &args.database_url {
        ctx.pg = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .ok();
    }
    let postmaster = args.pg_dir.as_ref().and_then(|d| {
        std::fs::read_to_string(d.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
    });

    let started = Instant::now();
    while ctx
        .http
        .get(format!("{}/healthz", ctx.base))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let assistant = ctx
        .api_json(
            "/v1/assistants",
            json!({"model": "bench-model", "name": "bench-runs",
                   "instructions": "You are a helpful data analyst.",
                   "tools": [{"type": "code_interpreter"}]}),
        )
        .await?;
    ctx.assistant = assistant["id"].as_str().unwrap_or_default().to_string();
    eprintln!(
        "bench-runs: waiting for {} warm sandboxes before measuring",
        args.pool_size
    );
    wait_for_pool(&ctx, args.pool_size).await;

    let mut rows = vec![];
    for (li, &conc) in args.levels.iter().enumerate() {
        // A short warm-up on its own threads also estimates how many threads the level needs.
        let warm = create_threads(&ctx, &format!("w{li}-"), 0, (4 * conc).max(32)).await;
        let n_warm = warm.len();
        let t = Instant::now();
        let queue = Work::Fresh(Arc::new(Mutex::new(warm.into())));
        measure_runs(&ctx, conc, 30.0, &queue, Duration::ZERO).await;
        let rate = n_warm as f64 / t.elapsed().as_secs_f64();
        let need = ((rate * args.seconds * 1.5) as usize + 2 * conc).clamp(2 * conc, args.max_runs);
        eprintln!(
            "bench-runs: no-code c={conc}: warm-up {rate:.0} runs/s; creating {need} threads"
        );
        let threads = create_threads(&ctx, &format!("t{li}-"), 0, need).await;
        let work = Work::Fresh(Arc::new(Mutex::new(threads.into())));
        eprintln!("bench-runs: no-code c={conc}: measuring {} s", args.seconds);
        let row = measure_level(&ctx, &args, postmaster, "no-code", conc, &work).await;
        print_row_line(&row);
        rows.push(row);
        // The same work through the Responses API, right after, at the same concurrency.
        let work = Work::Responses(format!("r{li}-"), Arc::new(AtomicUsize::new(0)));
        measure_runs(&ctx, conc, 2.0, &work, Duration::ZERO).await;
        eprintln!(
            "bench-runs: responses c={conc}: measuring {} s",
            args.seconds
        );
        let row = measure_level(&ctx, &args, postmaster, "response", conc, &work).await;
        print_row_line(&row);
        rows.push(row);
    }

    let mut code_threads: Vec<(String, String)> = vec![];
    for &conc in &args.code_levels {
        if code_threads.len() < conc {
            let new =
                create_threads(&ctx, "c", code_threads.len(), conc - code_threads.len()).await;
            eprintln!(
                "bench-runs: code c={conc}: first run on {} new threads (each takes a sandbox)",
                new.len()
            );
            // First runs a few at a time: each takes a warm sandbox or starts a cold one.
            let firsts: Vec<Sample> = futures::stream::iter(new.clone())
                .map(|(thread, tag)| {
                    let ctx = ctx.clone();
                    async move {
                        let s = one_run(&ctx, &thread, &tag).await;
                        if let Some(m) = &s.message_id {
                            let _ = ctx
                                .api(
                                    reqwest::Method::DELETE,
                                    &format!("/v1/threads/{thread}/messages/{m}"),
                                )
                                .send()
                                .await;
                        }
                        s
                    }
                })
                .buffer_unordered(4)
                .collect()
                .await;
            if let Some(e) = firsts.iter().find_map(|s| s.error.clone()) {
                eprintln!("bench-runs: a first code run failed: {e}");
            }
            code_threads.extend(new);
            wait_for_pool(&ctx, args.pool_size).await;
        }
        let work = Work::Own(code_threads[..conc].to_vec());
        eprintln!("bench-runs: code c={conc}: measuring {} s", args.seconds);
        let row = measure_level(&ctx, &args, postmaster, "code", conc, &work).await;
        print_row_line(&row);
        rows.push(row);
    }

    let ok = report(&rows, &args);
    println!(
        "upstream requests served: {}",
        ctx.up.requests.load(Ordering::Relaxed)
    );
    std::process::exit(if ok { 0 } else { 3 });
}
