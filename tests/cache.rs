//! The read cache through the real server and Postgres: a server reads its own writes at once,
//! servers on one database see each other's changes, and a lost change feed turns it off.

mod common;

use std::time::{Duration, Instant};

use common::{spawn_app, spawn_app_on, spawn_app_with, TestApp, OTHER_KEY};
use serde_json::{json, Value};
use sqlx::Connection;

/// Nothing listens on port 9 here: runs fail fast instead of reaching out.
const NO_UPSTREAM: [&str; 4] = [
    "--upstream-base-url",
    "http://127.0.0.1:9/v1",
    "--upstream-max-retries",
    "0",
];

async fn cache_state(app: &TestApp) -> String {
    let (_, body) = app.get("/readyz").await;
    body["read_cache"].as_str().unwrap_or_default().to_string()
}

/// The feed starts listening just after the server starts; until then nothing is cached.
async fn wait_until_live(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache_state(app).await != "live" {
        assert!(Instant::now() < deadline, "the read cache never went live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `path` on `app` until `done` holds for its body; returns the last body.
async fn eventually(app: &TestApp, path: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = app.get(path).await;
        if done(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sql(app: &TestApp, statements: &[&str]) {
    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .expect("connect to the test database");
    for statement in statements {
        sqlx::raw_sql(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

async fn seed(app: &TestApp) -> (String, String, String) {
    let (_, assistant) = app
        .post("/v1/assistants", json!({"model": "m", "name": "before"}))
        .await;
    let (_, thread) = app.post("/v1/threads", json!({})).await;
    let thread = thread["id"].as_str().unwrap().to_string();
    let (_, message) = app
        .post(
            &format!("/v1/threads/{thread}/messages"),
            json!({"role": "user", "content": "first"}),
        )
        .await;
    (
        assistant["id"].as_str().unwrap().to_string(),
        thread,
        message["id"].as_str().unwrap().to_string(),
    )
}

fn texts(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {page}"))
        .iter()
        .map(|m| {
            m["content"][0]["text"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn repeated_reads_are_served_from_memory() {
    let app = spawn_app().await;
    wait_until_live(&app).await;
    let (assistant, thread, _) = seed(&app).await;
    let path = format!("/v1/assistants/{assistant}");
    let messages = format!("/v1/threads/{thread}/messages");
    assert_eq!(app.get(&path).await.1["name"], "before");
    assert_eq!(texts(&app.get(&messages).await.1), ["first"]);

    // A change the server cannot hear of (triggers off) proves the next reads come from memory.
    sql(
        &app,
        &[
            "ALTER TABLE assistants DISABLE TRIGGER assistants_announce",
            "ALTER TABLE messages DISABLE TRIGGER messages_announce",
            r#"UPDATE assistants SET data = jsonb_set(data, '{name}', '"behind its back"')"#,
            r#"UPDATE messages SET data = jsonb_set(data, '{content,0,text,value}', '"changed"')"#,
        ],
    )
    .await;
    assert_eq!(app.get(&path).await.1["name"], "before");
    assert_eq!(texts(&app.get(&messages).await.1), ["first"]);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("assistd_read_cache_requests_total{result=\"hit\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("assistd_read_cache_bytes "), "{metrics}");
    // Another page of the same thread was never read, so it comes from the database.
    assert_eq!(
        texts(&app.get(&format!("{messages}?order=asc")).await.1),
        ["changed"]
    );

    // With the triggers back, any change is heard of and drops what was kept.
    sql(
        &app,
        &[
            "ALTER TABLE assistants ENABLE TRIGGER assistants_announce",
            "ALTER TABLE messages ENABLE TRIGGER messages_announce",
            "UPDATE assistants SET data = data",
            "UPDATE messages SET data = data",
        ],
    )
    .await;
    eventually(&app, &path, |_, a| a["name"] == "behind its back").await;
    eventually(&app, &messages, |_, page| texts(page) == ["changed"]).await;
    app.stop().await;
}

#[tokio::test]
async fn with_no_memory_for_it_the_cache_is_off_and_reads_go_to_the_database() {
    let app = spawn_app_with(&["--read-cache-mb", "0"]).await;
    assert_eq!(cache_state(&app).await, "disabled");
    let (assistant, _, _) = seed(&app).await;
    let path = format!("/v1/assistants/{assistant}");
    assert_eq!(app.get(&path).await.1["name"], "before");
    sql(
        &app,
        &[
            "ALTER TABLE assistants DISABLE TRIGGER assistants_announce",
            r#"UPDATE assistants SET data = jsonb_set(data, '{name}', '"behind its back"')"#,
        ],
    )
    .await;
    assert_eq!(app.get(&path).await.1["name"], "behind its back");
    app.stop().await;
}

#[tokio::test]
async fn a_server_reads_its_own_writes_at_once() {
    let app = spawn_app_with(&NO_UPSTREAM).await;
    wait_until_live(&app).await;
    let (assistant, thread, message) = seed(&app).await;
    let a_path = format!("/v1/assistants/{assistant}");
    let t_path = format!("/v1/threads/{thread}");
    let list = format!("/v1/threads/{thread}/messages");
    let m_path = format!("{list}/{message}");
    // Every read below is made before the write, so it would be served stale if a write path
    // forgot to drop it. Triggers off: the change feed would otherwise cover for such a path
    // within a millisecond or so.
    sql(
        &app,
        &[
            "ALTER TABLE assistants DISABLE TRIGGER assistants_announce",
            "ALTER TABLE threads DISABLE TRIGGER threads_announce",
            "ALTER TABLE messages DISABLE TRIGGER messages_announce",
        ],
    )
    .await;
    let warm = |paths: Vec<String>| {
        let app = &app;
        async move {
            for path in paths {
                app.get(&path).await;
                app.get(&path).await;
            }
        }
    };

    warm(vec![a_path.clone()]).await;
    app.post(&a_path, json!({"name": "after"})).await;
    assert_eq!(app.get(&a_path).await.1["name"], "after");

    warm(vec![t_path.clone()]).await;
    app.post(&t_path, json!({"metadata": {"k": "v"}})).await;
    assert_eq!(app.get(&t_path).await.1["metadata"]["k"], "v");

    warm(vec![list.clone(), m_path.clone()]).await;
    app.post(&list, json!({"role": "user", "content": "second"}))
        .await;
    assert_eq!(texts(&app.get(&list).await.1), ["second", "first"]);

    app.post(&m_path, json!({"metadata": {"seen": "yes"}}))
        .await;
    assert_eq!(app.get(&m_path).await.1["metadata"]["seen"], "yes");
    assert_eq!(app.get(&list).await.1["data"][1]["metadata"]["seen"], "yes");

    app.delete(&m_path).await;
    assert_eq!(app.get(&m_path).await.0, 404);
    assert_eq!(texts(&app.get(&list).await.1), ["second"]);

    // A run's additional messages join the thread when the run is created.
    warm(vec![list.clone()]).await;
    let (status, run) = app
        .post(
            &format!("{t_path}/runs"),
            json!({"assistant_id": assistant,
                   "additional_messages": [{"role": "user", "content": "third"}]}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(texts(&app.get(&list).await.1), ["third", "second"]);

    warm(vec![t_path.clone(), list.clone()]).await;
    eventually(
        &app,
        &format!("{t_path}/runs/{}", run["id"].as_str().unwrap()),
        |_, r| r["status"] == "failed",
    )
    .await;
    app.delete(&t_path).await;
    assert_eq!(app.get(&t_path).await.0, 404);
    assert_eq!(app.get(&list).await.0, 404);

    app.delete(&a_path).await;
    assert_eq!(app.get(&a_path).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn another_project_never_gets_a_cached_read() {
    let app = spawn_app().await;
    wait_until_live(&app).await;
    let (assistant, thread, _) = seed(&app).await;
    for path in [
        format!("/v1/assistants/{assistant}"),
        format!("/v1/threads/{thread}"),
        format!("/v1/threads/{thread}/messages"),
    ] {
        assert_eq!(app.get(&path).await.0, 200);
        assert_eq!(app.get(&path).await.0, 200);
        let (status, _) = app
            .send(app.client.get(app.url(&path)).bearer_auth(OTHER_KEY))
            .await;
        assert_eq!(status, 404, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn servers_on_one_database_see_each_others_changes() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.database_url, &[]).await;
    wait_until_live(&a).await;
    wait_until_live(&b).await;
    let (assistant, thread, _) = seed(&a).await;
    let a_path = format!("/v1/assistants/{assistant}");
    let list = format!("/v1/threads/{thread}/messages");
    for path in [&a_path, &list] {
        b.get(path).await;
        b.get(path).await;
    }

    a.post(&a_path, json!({"name": "renamed on a"})).await;
    a.post(&list, json!({"role": "user", "content": "from a"}))
        .await;
    eventually(&b, &a_path, |_, x| x["name"] == "renamed on a").await;
    eventually(&b, &list, |_, page| texts(page) == ["from a", "first"]).await;

    a.delete(&a_path).await;
    eventually(&b, &a_path, |status, _| status == 404).await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_lost_change_feed_turns_the_cache_off_until_it_listens_again() {
    let app = spawn_app().await;
    wait_until_live(&app).await;
    let (assistant, _, _) = seed(&app).await;
    let path = format!("/v1/assistants/{assistant}");
    app.get(&path).await;
    app.get(&path).await;

    // The feed's connection dies as the change commits, so its notice may never arrive.
    sql(
        &app,
        &[r#"BEGIN;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND query ILIKE 'listen%';
             UPDATE assistants SET data = jsonb_set(data, '{name}', '"while deaf"');
             COMMIT;"#],
    )
    .await;
    eventually(&app, &path, |_, a| a["name"] == "while deaf").await;
    wait_until_live(&app).await;
    app.post(&path, json!({"name": "after"})).await;
    assert_eq!(app.get(&path).await.1["name"], "after");
    app.stop().await;
}
