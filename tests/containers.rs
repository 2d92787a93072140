//! A run queued with a container's session (`domain::runs::insert_queued`, as the Responses API
//! queues one) executes its code in that container: it reads the file uploaded to the
//! container, and what it writes is listed as the container's `assistant` file. The same code
//! in the thread's own session sees neither.

mod common;

use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use common::{spawn_app_with, TestApp, KEY};
use serde_json::{json, Value};
use sqlx::Connection;

use assistd::auth::Project;
use assistd::executor::Assignment;
use assistd::objects::Run;

const CODE: &str = "import os\n\
print(open('/mnt/data/in.txt').read() if os.path.exists('/mnt/data/in.txt') else 'no input here')\n\
open('/mnt/data/out.txt', 'w').write('written by the code')\n";

/// A model that calls code_interpreter with [`CODE`], then answers once it read the result.
async fn scripted_model(Json(body): Json<Value>) -> axum::response::Response {
    let answered = body["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
               "model": body["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if answered {
        chunks.push(chunk(json!({"content": "done"}), Value::Null));
        chunks.push(chunk(json!({}), json!("stop")));
    } else {
        let arguments = json!({ "code": CODE }).to_string();
        chunks.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                   "function": {"name": "code_interpreter", "arguments": arguments}}]}),
            Value::Null,
        ));
        chunks.push(chunk(json!({}), json!("tool_calls")));
    }
    if body["stream_options"]["include_usage"] == true {
        chunks.push(
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": body["model"], "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        );
    }
    let mut sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    sse.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], sse).into_response()
}

async fn start_model() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/v1/chat/completions", post(scripted_model));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

async fn wait_for_run(app: &TestApp, thread: &str, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, body) = app.get(&format!("/v1/threads/{thread}/runs/{run}")).await;
        let status = body["status"].as_str().unwrap_or_default().to_string();
        if !["queued", "in_progress", "cancelling"].contains(&status.as_str()) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} never finished: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The logs of the run's code_interpreter call.
async fn code_logs(app: &TestApp, thread: &str, run: &str) -> String {
    let (_, steps) = app
        .get(&format!("/v1/threads/{thread}/runs/{run}/steps"))
        .await;
    let mut logs = String::new();
    for step in steps["data"].as_array().unwrap() {
        for call in step["step_details"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for output in call["code_interpreter"]["outputs"]
                .as_array()
                .into_iter()
                .flatten()
            {
                logs.push_str(output["logs"].as_str().unwrap_or_default());
            }
        }
    }
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_a_containers_session_reads_its_files_and_its_writes_become_container_files() {
    let model = start_model().await;
    let app = spawn_app_with(&["--upstream-base-url", &model, "--upstream-max-retries", "0"]).await;

    let (status, container) = app
        .post("/v1/containers", json!({"name": "for a run"}))
        .await;
    assert_eq!(status, 200, "{container}");
    let container_id = container["id"].as_str().unwrap().to_string();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello from the container".to_vec()).file_name("in.txt"),
    );
    let (status, uploaded) = app
        .send(
            app.client
                .post(app.url(&format!("/v1/containers/{container_id}/files")))
                .bearer_auth(KEY)
                .multipart(form),
        )
        .await;
    assert_eq!(status, 200, "{uploaded}");

    let (_, assistant) = app
        .post(
            "/v1/assistants",
            json!({"model": "scripted", "tools": [{"type": "code_interpreter"}]}),
        )
        .await;
    let (_, thread) = app
        .post(
            "/v1/threads",
            json!({"messages": [{"role": "user", "content": "read in.txt"}]}),
        )
        .await;
    let thread_id = thread["id"].as_str().unwrap().to_string();

    // In the thread's own session the container's file is not there.
    let (status, first) = app
        .post(
            &format!("/v1/threads/{thread_id}/runs"),
            json!({"assistant_id": assistant["id"]}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let first_id = first["id"].as_str().unwrap().to_string();
    let first = wait_for_run(&app, &thread_id, &first_id).await;
    assert_eq!(first["status"], "completed", "{first}");
    assert!(code_logs(&app, &thread_id, &first_id)
        .await
        .contains("no input here"));

    // The same run again, queued in the container's session.
    let mut again = first.clone();
    let run_id = format!("run_{}", uuid::Uuid::new_v4().simple());
    for (field, value) in [
        ("id", json!(run_id)),
        ("status", json!("queued")),
        ("started_at", Value::Null),
        ("completed_at", Value::Null),
        ("usage", Value::Null),
    ] {
        again[field] = value;
    }
    let run: Run = serde_json::from_value(again).unwrap();
    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let unreserved = Assignment {
        worker: None,
        relay: false,
    };
    assistd::domain::runs::insert_queued(
        &mut conn,
        &Project("proj_a".into()),
        &run,
        &unreserved,
        Some(&container_id),
        &[],
    )
    .await
    .unwrap();
    let done = wait_for_run(&app, &thread_id, &run_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let logs = code_logs(&app, &thread_id, &run_id).await;
    assert!(logs.contains("hello from the container"), "{logs}");

    let (_, files) = app
        .get(&format!("/v1/containers/{container_id}/files?order=asc"))
        .await;
    let listed: Vec<(String, String)> = files["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("/mnt/data/in.txt".to_string(), "user".to_string()),
            ("/mnt/data/out.txt".to_string(), "assistant".to_string()),
        ],
        "{files}"
    );
    let written = &files["data"][1];
    assert_eq!(written["bytes"], 19);
    let content = app
        .client
        .get(app.url(&format!(
            "/v1/containers/{container_id}/files/{}/content",
            written["id"].as_str().unwrap()
        )))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(
        content.bytes().await.unwrap().as_ref(),
        b"written by the code"
    );

    // Once the container expired, a run queued in its session fails instead of running code.
    sqlx::query("UPDATE containers SET last_active_at = last_active_at - 3600 WHERE id = $1")
        .bind(&container_id)
        .execute(&mut conn)
        .await
        .unwrap();
    let mut late = run.clone();
    late.id = format!("run_{}", uuid::Uuid::new_v4().simple());
    assistd::domain::runs::insert_queued(
        &mut conn,
        &Project("proj_a".into()),
        &late,
        &unreserved,
        Some(&container_id),
        &[],
    )
    .await
    .unwrap();
    let failed = wait_for_run(&app, &thread_id, &late.id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(
        failed["last_error"]["code"], "container_expired",
        "{failed}"
    );
    let (_, expired) = app.get(&format!("/v1/containers/{container_id}")).await;
    assert_eq!(expired["status"], "expired");

    let (status, _) = app.delete(&format!("/v1/containers/{container_id}")).await;
    assert_eq!(status, 200);
    app.stop().await;
}
