//! The REST surface over HTTP, on the real server with a real Postgres.

mod common;

use common::{assert_error, spawn_app, KEY, KEY_SAME_PROJECT, OTHER_KEY};
use serde_json::{json, Value};

#[tokio::test]
async fn every_v1_request_needs_a_known_bearer_key() {
    let app = spawn_app().await;
    let (status, body) = app.send(app.client.get(app.url("/v1/assistants"))).await;
    let error = assert_error(status, &body, 401);
    assert!(error["message"].as_str().unwrap().contains("API key"));
    let (status, body) = app
        .send(
            app.client
                .get(app.url("/v1/threads/thread_x"))
                .bearer_auth("sk-wrong-key-123"),
        )
        .await;
    let error = assert_error(status, &body, 401);
    assert_eq!(error["code"], "invalid_api_key");
    assert!(
        !error["message"]
            .as_str()
            .unwrap()
            .contains("sk-wrong-key-123"),
        "the key is masked"
    );
    app.stop().await;
}

#[tokio::test]
async fn another_projects_objects_are_invisible_and_shared_projects_see_each_other() {
    let app = spawn_app().await;
    let (_, assistant) = app.post("/v1/assistants", json!({"model": "m"})).await;
    let id = assistant["id"].as_str().unwrap();

    let (status, body) = app
        .send(
            app.client
                .get(app.url(&format!("/v1/assistants/{id}")))
                .bearer_auth(OTHER_KEY),
        )
        .await;
    let error = assert_error(status, &body, 404);
    assert_eq!(
        error["message"],
        format!("No assistant found with id '{id}'.")
    );
    let (_, list) = app
        .send(
            app.client
                .get(app.url("/v1/assistants"))
                .bearer_auth(OTHER_KEY),
        )
        .await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = app
        .send(
            app.client
                .delete(app.url(&format!("/v1/assistants/{id}")))
                .bearer_auth(OTHER_KEY),
        )
        .await;
    assert_eq!(status, 404, "another project cannot delete it");

    let (status, same) = app
        .send(
            app.client
                .get(app.url(&format!("/v1/assistants/{id}")))
                .bearer_auth(KEY_SAME_PROJECT),
        )
        .await;
    assert_eq!((status, same["id"].clone()), (200, json!(id)));
    app.stop().await;
}

#[tokio::test]
async fn lists_page_stably_through_objects_created_in_the_same_second() {
    let app = spawn_app().await;
    let mut created = vec![];
    for i in 0..25 {
        let (_, a) = app
            .post(
                "/v1/assistants",
                json!({"model": "m", "name": format!("a{i}")}),
            )
            .await;
        created.push(a["id"].as_str().unwrap().to_string());
    }
    // Newest first by default, 20 per page.
    let (_, page) = app.get("/v1/assistants").await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    let newest: Vec<&str> = created.iter().rev().take(20).map(String::as_str).collect();
    assert_eq!(ids, newest);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["first_id"], json!(newest[0]));
    assert_eq!(page["last_id"], json!(newest[19]));

    // Walking with `after` in both orders visits each object exactly once, in order.
    for (order, expected) in [
        ("asc", created.clone()),
        ("desc", created.iter().rev().cloned().collect()),
    ] {
        let mut seen: Vec<String> = vec![];
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/assistants?limit=7&order={order}");
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let (status, page) = app.get(&path).await;
            assert_eq!(status, 200);
            seen.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["id"].as_str().unwrap().to_string()),
            );
            if page["has_more"] == false {
                break;
            }
            after = page["last_id"].as_str().map(str::to_string);
        }
        assert_eq!(seen, expected, "order={order}");
    }

    // `before` returns the objects just ahead of the cursor, still in the requested order.
    let (_, page) = app
        .get(&format!(
            "/v1/assistants?order=asc&limit=3&before={}",
            created[10]
        ))
        .await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            created[7].as_str(),
            created[8].as_str(),
            created[9].as_str()
        ]
    );
    assert_eq!(page["has_more"], true);

    // Both cursors: the page lies strictly between them, in either order.
    let ids_of = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = app
        .get(&format!(
            "/v1/assistants?order=asc&after={}&before={}",
            created[3], created[7]
        ))
        .await;
    assert_eq!(ids_of(&page), created[4..7].to_vec());
    assert_eq!(page["has_more"], false);
    let (_, page) = app
        .get(&format!(
            "/v1/assistants?order=desc&limit=2&after={}&before={}",
            created[7], created[3]
        ))
        .await;
    assert_eq!(ids_of(&page), vec![created[6].clone(), created[5].clone()]);
    assert_eq!(page["has_more"], true);

    // Another project's id is no cursor here: it positions nothing.
    let (_, theirs) = app
        .send(
            app.client
                .post(app.url("/v1/assistants"))
                .bearer_auth(OTHER_KEY)
                .json(&json!({"model": "m"})),
        )
        .await;
    let theirs = theirs["id"].as_str().unwrap();
    for order in ["asc", "desc"] {
        for cursor in ["after", "before"] {
            let (status, page) = app
                .get(&format!("/v1/assistants?order={order}&{cursor}={theirs}"))
                .await;
            assert_eq!(status, 200);
            assert_eq!(page["data"], json!([]), "{order} {cursor}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn list_parameters_out_of_range_are_refused() {
    let app = spawn_app().await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("order=up", "order"),
    ] {
        let (status, body) = app.get(&format!("/v1/assistants?{query}")).await;
        let error = assert_error(status, &body, 400);
        assert_eq!(error["param"], param, "{query}");
        assert_eq!(error["type"], "invalid_request_error");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_request_changes_nothing() {
    let app = spawn_app().await;
    let (_, assistant) = app
        .post(
            "/v1/assistants",
            json!({"model": "m", "name": "keep", "metadata": {"k": "v"}}),
        )
        .await;
    let id = assistant["id"].as_str().unwrap();
    let bad_bodies = [
        json!({"model": "m", "name": "x".repeat(257)}),
        json!({"model": "m", "description": "x".repeat(513)}),
        json!({"model": "m", "temperature": 2.5}),
        json!({"model": "m", "top_p": -0.1}),
        json!({"model": "m", "metadata": (0..17).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        json!({"model": "m", "tools": (0..129).map(|_| json!({"type": "code_interpreter"})).collect::<Vec<_>>()}),
        json!({"model": "m", "tool_resources": {"code_interpreter": {"file_ids": ["file-missing"]}}}),
        json!({"model": 5}),
        json!({"model": "m", "surprise": true}),
    ];
    for body in &bad_bodies {
        let (status, reply) = app.post("/v1/assistants", body.clone()).await;
        let error = assert_error(status, &reply, 400);
        assert!(
            error["param"].is_string(),
            "param named for {body}: {reply}"
        );
        let (status, reply) = app
            .post(&format!("/v1/assistants/{id}"), {
                let mut b = body.clone();
                b.as_object_mut().unwrap().remove("model");
                b
            })
            .await;
        if body.get("model") != Some(&json!(5)) {
            assert_error(status, &reply, 400);
        }
    }
    let (_, list) = app.get("/v1/assistants").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "no assistant was created"
    );
    let (_, after) = app.get(&format!("/v1/assistants/{id}")).await;
    assert_eq!(after, assistant, "the assistant is unchanged");
    app.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_openai_errors() {
    let app = spawn_app().await;
    let (status, body) = app
        .send(
            app.client
                .post(app.url("/v1/assistants"))
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body("{\"model\": "),
        )
        .await;
    let error = assert_error(status, &body, 400);
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("could not parse the JSON body"));

    // The test server allows 64 KiB of JSON.
    let (status, body) = app
        .post(
            "/v1/assistants",
            json!({"model": "m", "instructions": "x".repeat(70_000)}),
        )
        .await;
    assert_error(status, &body, 413);
    let (_, list) = app.get("/v1/assistants").await;
    assert_eq!(list["data"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn unknown_ids_get_openais_not_found_wording() {
    let app = spawn_app().await;
    let (_, thread) = app.post("/v1/threads", json!({})).await;
    let t = thread["id"].as_str().unwrap();
    let cases = [
        (
            "/v1/assistants/asst_nope".to_string(),
            "No assistant found with id 'asst_nope'.",
        ),
        (
            "/v1/threads/thread_nope".to_string(),
            "No thread found with id 'thread_nope'.",
        ),
        (
            format!("/v1/threads/{t}/messages/msg_nope"),
            "No message found with id 'msg_nope'.",
        ),
        (
            format!("/v1/threads/{t}/runs/run_nope"),
            "No run found with id 'run_nope'.",
        ),
        (
            "/v1/files/file-nope".to_string(),
            "No such File object: file-nope",
        ),
    ];
    for (path, message) in cases {
        let (status, body) = app.get(&path).await;
        let error = assert_error(status, &body, 404);
        assert_eq!(error["message"], message, "{path}");
    }
    let (status, body) = app.get("/v1/nothing-here").await;
    assert_error(status, &body, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_file_round_trips_byte_for_byte_and_delete_removes_its_bytes() {
    let app = spawn_app().await;
    let bytes: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (status, file) = app.upload("data.csv", bytes.clone(), "assistants").await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["bytes"], bytes.len());
    assert_eq!(file["filename"], "data.csv");
    assert_eq!(file["purpose"], "assistants");
    let id = file["id"].as_str().unwrap();

    let response = app
        .client
        .get(app.url(&format!("/v1/files/{id}/content")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/csv");
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let blob = app.data_dir.join("files").join(id);
    assert!(blob.exists());
    let (status, deleted) = app.delete(&format!("/v1/files/{id}")).await;
    assert_eq!(
        (status, deleted),
        (200, json!({"id": id, "object": "file", "deleted": true}))
    );
    assert!(!blob.exists(), "the bytes are removed with the file");
    let (status, body) = app.get(&format!("/v1/files/{id}/content")).await;
    assert_error(status, &body, 404);
    app.stop().await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_and_leaves_nothing_behind() {
    let app = spawn_app().await;
    let (status, body) = app
        .upload("big.txt", vec![b'x'; 2_100_000], "assistants")
        .await;
    assert_error(status, &body, 413);
    let (_, list) = app.get("/v1/files").await;
    assert_eq!(list["data"], json!([]));
    let leftovers = std::fs::read_dir(app.data_dir.join("files"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "no partial upload is kept");

    let (status, body) = app
        .upload("a.txt", b"a".to_vec(), "assistants_output")
        .await;
    assert_eq!(assert_error(status, &body, 400)["param"], "purpose");
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_thread_removes_its_messages() {
    let app = spawn_app().await;
    let (_, thread) = app
        .post(
            "/v1/threads",
            json!({"messages": [{"role": "user", "content": "hello"}], "metadata": {"a": "b"}}),
        )
        .await;
    let t = thread["id"].as_str().unwrap();
    let (_, messages) = app.get(&format!("/v1/threads/{t}/messages")).await;
    let m = messages["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(messages["data"][0]["content"][0]["text"]["value"], "hello");

    let (status, deleted) = app.delete(&format!("/v1/threads/{t}")).await;
    assert_eq!(
        (status, deleted["object"].clone()),
        (200, json!("thread.deleted"))
    );
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE id = $1")
        .bind(&m)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let (status, body) = app.get(&format!("/v1/threads/{t}/messages/{m}")).await;
    assert_error(status, &body, 404);
    app.stop().await;
}

#[tokio::test]
async fn responses_carry_a_request_id_and_health_routes_need_no_key() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/assistants"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap()
        .to_string();
    assert!(!id.is_empty());
    let response = app
        .client
        .get(app.url("/v1/assistants"))
        .bearer_auth(KEY)
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id");

    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = ready.status();
    let body: Value = ready.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["postgres"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    let metrics = |text: String| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with("assistd_http_requests_total")
                    && l.contains("route=\"/v1/assistants/{assistant_id}\"")
                    && l.contains("status=\"404\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = metrics(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    for _ in 0..3 {
        app.get("/v1/assistants/asst_missing").await;
    }
    let after = metrics(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(after - before >= 3.0, "before {before}, after {after}");
    app.stop().await;
}

#[tokio::test]
async fn messages_accept_text_parts_and_attachments_and_filter_by_run() {
    let app = spawn_app().await;
    let (_, file) = app
        .upload("t.csv", b"a,b\n1,2\n".to_vec(), "assistants")
        .await;
    let (_, thread) = app.post("/v1/threads", json!({})).await;
    let t = thread["id"].as_str().unwrap();
    let (status, message) = app
        .post(
            &format!("/v1/threads/{t}/messages"),
            json!({
                "role": "user",
                "content": [{"type": "text", "text": "look"}, {"type": "text", "text": "here"}],
                "attachments": [{"file_id": file["id"], "tools": [{"type": "code_interpreter"}]}]
            }),
        )
        .await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["content"].as_array().unwrap().len(), 2);
    assert_eq!(message["attachments"][0]["file_id"], file["id"]);
    assert_eq!(message["run_id"], Value::Null);

    let (status, body) = app
        .post(
            &format!("/v1/threads/{t}/messages"),
            json!({"role": "user", "content": ""}),
        )
        .await;
    assert_error(status, &body, 400);
    let (status, body) = app
        .post(
            &format!("/v1/threads/{t}/messages"),
            json!({"role": "system", "content": "x"}),
        )
        .await;
    assert_eq!(assert_error(status, &body, 400)["param"], "role");
    let (status, body) = app
        .post(
            &format!("/v1/threads/{t}/messages"),
            json!({"role": "user", "content": "x",
                   "attachments": [{"file_id": "file-nope", "tools": [{"type": "code_interpreter"}]}]}),
        )
        .await;
    assert_error(status, &body, 400);

    let (_, filtered) = app
        .get(&format!("/v1/threads/{t}/messages?run_id=run_none"))
        .await;
    assert_eq!(filtered["data"], json!([]));
    let (_, all) = app.get(&format!("/v1/threads/{t}/messages")).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
    app.stop().await;
}
