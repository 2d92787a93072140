//! `POST /v1/responses`: a response becomes a run of the executor on a backing thread — a
//! new thread, or its previous response's, whose run it continues when that one stopped for
//! function outputs. The input's messages go on the thread, function calls and their
//! outputs passed back by hand into the run's opening transcript.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::request::{Compacted, Container, CreateResponse};
use super::AppState;
use crate::auth::Project;
use crate::domain::containers;
use crate::domain::conversations::{self, Conversation};
use crate::domain::files::require_files;
use crate::domain::responses::context::{self, Placed};
use crate::domain::responses::input::{self, Input};
use crate::domain::responses::{self, compaction, input_files, reference, Stored, RESPONSE};
use crate::domain::{runs, threads};
use crate::error::{ApiError, ApiResult};
use crate::executor::Handover;
use crate::ids;
use crate::objects::run::{TruncationStrategy, Usage};
use crate::objects::tools::{Tool, ToolResources};
use crate::objects::{Message, Run};
use crate::store::{self, Kind};

/// A response queued for execution, and the handover its caller dispatches.
pub struct Started {
    pub stored: Stored,
    pub handover: Handover,
}

pub async fn start(
    state: &AppState,
    project: &Project,
    req: &CreateResponse,
    stream: bool,
) -> ApiResult<Started> {
    req.check()?;
    let (tools, container, stores) = req.tools()?;
    let response_format = req.response_format()?;
    let tool_choice = req.tool_choice()?;
    let input = req.input()?;
    let previous = previous_of(state, project, req).await?;
    let mut echo = req.echo();
    let id = ids::new_id(RESPONSE);
    let conversation = match &req.conversation {
        Some(c) => {
            let id = c.as_str().or_else(|| c["id"].as_str()).unwrap_or_default();
            let conversation = conversations::load(&state.db, project, id).await?;
            echo["conversation"] = json!({ "id": id });
            Some(conversation)
        }
        None => None,
    };
    // The backing thread: the conversation's, the previous response's, or a new one (stored
    // once the input is checked, so a refused request leaves nothing behind).
    let existing = conversation
        .as_ref()
        .map(|c| c.thread_id.clone())
        .or_else(|| previous.as_ref().map(|p| p.thread_id.clone()));
    let input = reference::resolve(&state.db, project, existing.as_deref(), input).await?;

    // The response whose function calls this input may answer: the previous one, or the
    // conversation's newest. If its run still waits for them, this one continues it.
    let answered = match (&previous, &conversation) {
        (Some(prev), _) => Some(prev.clone()),
        (None, Some(c)) => responses::newest_on_thread(&state.db, project, &c.thread_id).await?,
        _ => None,
    };
    let input = match &answered {
        Some(prev) => {
            let run = load_run(state, project, &prev.run_id).await?;
            if run.status == "requires_action" {
                echo["container_id"] = json!(prev.container_id());
                return continue_run(state, project, id, echo, prev, run, &input, stream).await;
            }
            with_answered_calls(state, prev, input).await?
        }
        None => input,
    };

    // A previous response that is not the newest on its thread: this one branches off it, on
    // a copy of the thread as it stood then (a chain is a tree; a thread is a line).
    let fork = match (&previous, &conversation) {
        (Some(prev), None) => match responses::fork_point(&state.db, prev).await? {
            Some(cut) => Some(threads::fork(&state.db, project, &prev.thread_id, cut).await?),
            None => None,
        },
        _ => None,
    };
    let (new_thread, copied, copied_items) = match fork {
        Some((thread, copied, items)) => (Some(thread), copied, items),
        None if existing.is_none() => (
            Some(threads::new_thread(ToolResources::default())),
            vec![],
            vec![],
        ),
        None => (None, vec![], vec![]),
    };
    let new_thread = new_thread.map(|mut t| {
        if !stores.is_empty() {
            t.tool_resources.file_search = Some(json!({ "vector_store_ids": stores }));
        }
        t
    });
    let thread_id = match &new_thread {
        Some(t) => t.id.clone(),
        None => existing.clone().unwrap_or_default(),
    };
    let has_code = container.is_some();
    // Items replayed ahead of this input's first message follow the thread's newest one.
    let before = match (copied.last(), &new_thread) {
        (Some(m), _) => Some(m.id.clone()),
        (None, Some(_)) => None,
        (None, None) => context::newest_message(&state.db, &thread_id).await?,
    };
    let mut made = input_for_thread(state, project, &thread_id, &input, has_code, before).await?;
    made.messages.splice(0..0, copied);
    made.context.splice(0..0, copied_items);
    let instructions = joined_instructions(req, &made.system);
    // The newest code call replayed in this input names the container its code ran in.
    let replayed = made
        .context
        .iter()
        .rev()
        .find_map(|p| match p.item["type"].as_str() {
            Some("code_interpreter_call") => p.item["container_id"].as_str().map(str::to_string),
            Some("shell_call") => p.item["environment"]["container_id"]
                .as_str()
                .map(str::to_string),
            _ => None,
        });
    let session = match &container {
        Some(c) => Some(
            session_for(
                state,
                project,
                c,
                previous.as_ref(),
                conversation.as_ref(),
                replayed,
            )
            .await?,
        ),
        None => None,
    };
    echo["container_id"] = json!(session);
    if new_thread.is_none() {
        set_stores(state, project, &thread_id, &stores).await?;
    }
    let mut run = new_run(
        req,
        &thread_id,
        instructions,
        tools,
        tool_choice,
        response_format,
    );
    let stored = Stored {
        id,
        created_at: run.created_at,
        thread_id: thread_id.clone(),
        run_id: run.id.clone(),
        first_step_seq: 0,
        usage_before: Usage::default(),
        request: echo,
        input: made.items,
        frozen: None,
    };
    let mut handover = state
        .executor
        .handover(&run.id, stream)
        .in_session(session.as_deref());
    let start = runs::Start {
        messages: made.messages,
        transcript: made.transcript,
        announce: &["thread.run.created", "thread.run.queued"],
        session,
    };
    let expiry = state.config.run_expiry_secs;
    // One transaction: the new thread, the run on the queue, and the response's row.
    let mut tx = state.db.begin().await?;
    input_files::store(&state.blobs, &mut tx, project, made.to_store).await?;
    if let Some(thread) = &new_thread {
        threads::insert(&mut *tx, project, thread).await?;
    }
    runs::queue_in(
        &mut tx,
        &state.executor,
        project,
        &mut run,
        start,
        expiry,
        &mut handover,
    )
    .await
    .map_err(|e| match e {
        ApiError::InvalidRequest { .. } if conversation.is_some() => ApiError::invalid_param(
            "conversation",
            "Another response is in progress in this conversation.",
        ),
        ApiError::InvalidRequest { .. } => ApiError::invalid_param(
            "previous_response_id",
            format!(
                "Response {} is still in progress.",
                req.previous_response_id.as_deref().unwrap_or("")
            ),
        ),
        other => other,
    })?;
    context::insert(&mut tx, project, &thread_id, &made.context).await?;
    responses::insert(&mut *tx, project, &stored).await?;
    tx.commit().await?;
    state.cache.invalidate(&thread_id);
    Ok(Started { stored, handover })
}

/// The model context a request would open with (its chain's or conversation's messages, its
/// input, instructions and tools), built as `start` builds the run, storing nothing.
pub struct Opening {
    pub run: Run,
    pub chat: Vec<Value>,
}

pub async fn opening(
    state: &AppState,
    project: &Project,
    req: &CreateResponse,
) -> ApiResult<Opening> {
    req.check()?;
    let (tools, container, _) = req.tools()?;
    let response_format = req.response_format()?;
    let tool_choice = req.tool_choice()?;
    let input = req.input()?;
    let previous = previous_of(state, project, req).await?;
    let thread = match &req.conversation {
        Some(c) => {
            let id = c.as_str().or_else(|| c["id"].as_str()).unwrap_or_default();
            Some(conversations::load(&state.db, project, id).await?.thread_id)
        }
        None => previous.as_ref().map(|p| p.thread_id.clone()),
    };
    let input = reference::resolve(&state.db, project, thread.as_deref(), input).await?;
    let input = match &previous {
        Some(prev) => with_answered_calls(state, prev, input).await?,
        None => input,
    };
    let thread_id = thread.clone().unwrap_or_default();
    let before = match thread.as_deref() {
        Some(t) => context::newest_message(&state.db, t).await?,
        None => None,
    };
    let made = input_for_thread(
        state,
        project,
        &thread_id,
        &input,
        container.is_some(),
        before,
    )
    .await?;
    let placed: Vec<_> = made
        .context
        .iter()
        .map(|p| (p.after.clone(), p.item.clone()))
        .collect();
    let instructions = joined_instructions(req, &made.system);
    let run = new_run(
        req,
        &thread_id,
        instructions,
        tools,
        tool_choice,
        response_format,
    );
    let chat = state
        .executor
        .opening_context(
            &run,
            thread.as_deref(),
            &made.messages,
            &placed,
            &made.transcript,
        )
        .await?;
    Ok(Opening { run, chat })
}

/// `context_management` compaction: when the request's context is past its threshold, the
/// context is summarised into a compaction item and the response starts from that item and the
/// request's newest user messages alone, on a new thread (as if the client had called
/// `/responses/compact` and passed its item back). A response whose previous one waits for
/// function outputs continues that run instead, uncompacted.
pub async fn compact(
    state: &AppState,
    project: &Project,
    req: &mut CreateResponse,
) -> ApiResult<()> {
    let Some(threshold) = req.compact_threshold()? else {
        return Ok(());
    };
    if let Some(prev) = previous_of(state, project, req).await? {
        if load_run(state, project, &prev.run_id).await?.status == "requires_action" {
            return Ok(());
        }
    }
    let opening = opening(state, project, req).await?;
    if state.executor.count_tokens(&opening.run, &opening.chat) <= threshold {
        return Ok(());
    }
    let (item, _) = compaction::summarise(&state.executor, &req.model, &opening.chat).await?;
    let mut input = vec![item.clone()];
    input.extend(newest_user_messages(req.input.take()));
    req.input = Some(Value::from(input));
    req.compacted = Some(Compacted {
        item,
        previous_response_id: req.previous_response_id.take(),
    });
    Ok(())
}

/// The user messages the input ends with (the whole input when it is a string).
fn newest_user_messages(input: Option<Value>) -> Vec<Value> {
    match input {
        Some(Value::String(s)) => vec![json!({"role": "user", "content": s})],
        Some(Value::Array(items)) => {
            let is_user =
                |i: &Value| i["role"] == "user" && (i["type"].is_null() || i["type"] == "message");
            let kept = items.iter().rev().take_while(|i| is_user(i)).count();
            items[items.len() - kept..].to_vec()
        }
        _ => vec![],
    }
}

async fn previous_of(
    state: &AppState,
    project: &Project,
    req: &CreateResponse,
) -> ApiResult<Option<Stored>> {
    let Some(id) = &req.previous_response_id else {
        return Ok(None);
    };
    let found = match req.held.contains(id) {
        true => responses::load_held(&state.db, project, id).await,
        false => responses::load(&state.db, project, id).await,
    };
    let found = found.map_err(|_| {
        ApiError::invalid_code(
            "previous_response_id",
            "previous_response_not_found",
            format!("Previous response with id '{id}' not found."),
        )
    })?;
    Ok(Some(found))
}

/// The request's instructions, then the input's system and developer texts.
fn joined_instructions(req: &CreateResponse, system: &[String]) -> String {
    let mut instructions = req.instructions.clone().unwrap_or_default();
    for s in system {
        if !instructions.is_empty() {
            instructions.push('\n');
        }
        instructions.push_str(s);
    }
    instructions
}

/// Outputs for function calls an earlier response ended with, whose run no longer waits
/// (it expired): the calls join the input ahead of them, so a new run's transcript holds
/// both, as if the client had passed the `function_call` items back too.
async fn with_answered_calls(
    state: &AppState,
    prev: &Stored,
    input: Vec<Input>,
) -> ApiResult<Vec<Input>> {
    let passed: Vec<String> = input
        .iter()
        .filter_map(|i| match i {
            Input::FunctionCall { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .collect();
    let unmatched = input.iter().any(
        |i| matches!(i, Input::FunctionCallOutput { call_id, .. } if !passed.contains(call_id)),
    );
    if !unmatched {
        return Ok(input);
    }
    let calls = responses::function_calls(&state.db, prev).await?;
    let mut out = Vec::with_capacity(input.len() + calls.len());
    let mut seeded: Vec<String> = vec![];
    for item in input {
        if let Input::FunctionCallOutput { call_id, .. } = &item {
            let call = calls.iter().find(|(id, ..)| id == call_id);
            let known = passed.contains(call_id) || seeded.contains(call_id);
            if let (Some((_, name, arguments)), false) = (call, known) {
                seeded.push(call_id.clone());
                out.push(Input::FunctionCall {
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                });
            }
        }
        out.push(item);
    }
    Ok(out)
}

async fn load_run(state: &AppState, project: &Project, run_id: &str) -> ApiResult<Run> {
    store::get(&state.db, Kind::Run, project, run_id, &[]).await
}

/// The client answers the function calls its previous response ended with: their outputs
/// go to the waiting run, which this response follows from here.
#[allow(clippy::too_many_arguments)]
async fn continue_run(
    state: &AppState,
    project: &Project,
    id: String,
    echo: Value,
    prev: &Stored,
    run: Run,
    input: &[Input],
    stream: bool,
) -> ApiResult<Started> {
    let mut outputs = HashMap::new();
    let mut items = vec![];
    for item in input {
        match item {
            Input::FunctionCallOutput { call_id, output } => {
                outputs.insert(call_id.clone(), output.clone());
                items.push(output_item(call_id, output));
            }
            Input::Item(item) if item["type"] == "shell_call_output" => {
                let call_id = item["call_id"].as_str().unwrap_or_default();
                let output = item["output"].as_array().cloned().unwrap_or_default();
                let text = crate::executor::shell::result_text(&[], &output);
                outputs.insert(call_id.to_string(), text);
                items.push(item.clone());
            }
            Input::Message { .. } => {
                return Err(ApiError::invalid_param(
                    "input",
                    "The previous response is waiting for tool outputs: send only function_call_output and shell_call_output items.",
                ))
            }
            _ => {}
        }
    }
    let required = run
        .required_action
        .as_ref()
        .map(|a| a.submit_tool_outputs.tool_calls.clone())
        .unwrap_or_default();
    if let Some(call) = required.iter().find(|c| !outputs.contains_key(&c.id)) {
        return Err(ApiError::invalid_param(
            "input",
            format!("No tool output found for function call {}.", call.id),
        ));
    }
    if let Some(extra) = outputs
        .keys()
        .find(|k| !required.iter().any(|c| &c.id == *k))
    {
        return Err(ApiError::invalid_param(
            "input",
            format!("No tool call found for function call output with call_id {extra}."),
        ));
    }
    // The previous response ends where this one begins.
    let frozen = responses::object(&state.db, &state.blobs, prev).await?;
    let stored = Stored {
        id,
        created_at: ids::now(),
        thread_id: prev.thread_id.clone(),
        run_id: run.id.clone(),
        first_step_seq: responses::next_step_seq(&state.db, &run.id).await?,
        usage_before: run.usage.unwrap_or_default(),
        request: echo,
        input: items,
        frozen: None,
    };
    let mut handover = state.executor.handover(&run.id, stream);
    state
        .executor
        .accept_tool_outputs(project, &run, outputs, &mut handover)
        .await?;
    responses::freeze(&state.db, &prev.id, &frozen).await?;
    responses::insert(&state.db, project, &stored).await?;
    Ok(Started { stored, handover })
}

/// The sandbox session a response's code runs in: the container it names, or with `auto`
/// the first still usable (the tool's `file_ids` copied in) of: the container of the newest
/// code call the input replays, the one its chain or conversation used, the one of a code
/// call added to the conversation by hand; else a new one.
async fn session_for(
    state: &AppState,
    project: &Project,
    container: &Container,
    previous: Option<&Stored>,
    conversation: Option<&Conversation>,
    replayed: Option<String>,
) -> ApiResult<String> {
    let (file_ids, memory_limit, network, skills) = match container {
        Container::Id(id) => return Ok(state.containers.require_usable(project, id).await?.id),
        Container::Auto {
            file_ids,
            memory_limit,
            network_policy,
            skills,
        } => (file_ids, memory_limit, network_policy, skills),
    };
    let network = state
        .containers
        .network_policy("tools[].container.network_policy", network.as_ref())?;
    let shown = containers::network::shown(&network);
    let skills = state.containers.auto_skills(project, skills).await?;
    let earlier = match (previous, conversation) {
        (Some(prev), _) => responses::chain_container(&state.db, project, prev).await?,
        (None, Some(c)) => responses::container_of_thread(&state.db, &c.thread_id).await?,
        _ => None,
    };
    let added = match conversation {
        Some(c) => context::container_of_thread(&state.db, &c.thread_id).await?,
        None => None,
    };
    for id in [replayed, earlier, added].into_iter().flatten() {
        // Reused only under the policy asked for now (never a wider or narrower one) and with
        // the same skills: a container made otherwise is not the one asked for.
        let usable = state.containers.require_usable(project, &id).await;
        if usable.is_ok_and(|c| c.network_policy == shown)
            && state.containers.has_skills(&id, &skills).await?
        {
            for file_id in file_ids {
                state.containers.add_file_id(project, &id, file_id).await?;
            }
            return Ok(id);
        }
    }
    let created = state
        .containers
        .create_auto(project, file_ids, memory_limit.as_deref(), network, skills)
        .await?;
    Ok(created.id)
}

/// A previous response's thread searches this request's stores.
async fn set_stores(
    state: &AppState,
    project: &Project,
    thread_id: &str,
    stores: &[String],
) -> ApiResult<()> {
    if stores.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE threads SET data = jsonb_set(data, '{tool_resources,file_search}', $3)
         WHERE id = $1 AND project = $2",
    )
    .bind(thread_id)
    .bind(&project.0)
    .bind(sqlx::types::Json(json!({ "vector_store_ids": stores })))
    .execute(&state.db)
    .await?;
    Ok(())
}

/// What the input puts on the backing thread and into the run.
#[derive(Default)]
struct ThreadInput {
    messages: Vec<Message>,
    /// Opening transcript turns: function calls and outputs passed by hand.
    transcript: Vec<Value>,
    /// System and developer texts, which join the instructions.
    system: Vec<String>,
    /// The items `/input_items` lists.
    items: Vec<Value>,
    /// Inline files the code needs, stored once the request is accepted.
    to_store: input_files::ToStore,
    /// Items the model reads as context where they stood among the messages (`thread_items`).
    context: Vec<Placed>,
}

async fn input_for_thread(
    state: &AppState,
    project: &Project,
    thread_id: &str,
    input: &[Input],
    has_code: bool,
    before: Option<String>,
) -> ApiResult<ThreadInput> {
    let mut out = ThreadInput::default();
    let ThreadInput {
        messages,
        transcript,
        system,
        items,
        to_store,
        context,
    } = &mut out;
    // Function calls and outputs followed by a message are history the client replays: they
    // keep their place among the messages. Trailing ones open this run's transcript.
    let last_message = input.iter().rposition(
        |i| matches!(i, Input::Message { role, .. } if role == "user" || role == "assistant"),
    );
    let mut after = before;
    let mut refs = vec![];
    let readers = input_files::Readers {
        db: &state.db,
        blobs: &state.blobs,
        sandbox: &state.sandbox,
    };
    let mut pending_calls: Vec<String> = vec![];
    for (i, item) in input.iter().enumerate() {
        match item {
            Input::Message { role, parts } if role == "system" || role == "developer" => {
                let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
                system.push(text.join("\n"));
                items.push(input::message_item(&ids::new_id(ids::MESSAGE), role, parts));
            }
            Input::Message { role, parts } => {
                let at = format!("input[{i}]");
                let mut parts = parts.clone();
                let texts =
                    input_files::read(&readers, project, &mut parts, &at, has_code, to_store)
                        .await?;
                let message =
                    input::message(thread_id, role, &parts, &texts, has_code, &at, &mut refs);
                items.push(input::message_item(&message.id, role, &parts));
                after = Some(message.id.clone());
                messages.push(message);
            }
            Input::FunctionCall {
                call_id,
                name,
                arguments,
            } if last_message.is_some_and(|m| i < m) => {
                pending_calls.push(call_id.clone());
                let item = context::function_call(call_id, name, arguments);
                items.push(item.clone());
                context.push(Placed {
                    after: after.clone(),
                    item,
                });
            }
            Input::FunctionCallOutput { call_id, output }
                if last_message.is_some_and(|m| i < m) && pending_calls.contains(call_id) =>
            {
                let item = context::function_call_output(call_id, output);
                items.push(item.clone());
                context.push(Placed {
                    after: after.clone(),
                    item,
                });
            }
            Input::Item(item) => {
                items.push(item.clone());
                context.push(Placed {
                    after: after.clone(),
                    item: item.clone(),
                });
            }
            Input::FunctionCall {
                call_id,
                name,
                arguments,
            } => {
                pending_calls.push(call_id.clone());
                transcript.push(json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]}));
                items.push(json!({"type": "function_call", "id": crate::domain::responses::items::call_item_id("fc", call_id),
                                  "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"}));
            }
            Input::FunctionCallOutput { call_id, output } => {
                if !pending_calls.contains(call_id) {
                    return Err(ApiError::invalid_param(
                        format!("input[{i}]"),
                        format!(
                            "No tool call found for function call output with call_id {call_id}."
                        ),
                    ));
                }
                transcript
                    .push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
                items.push(output_item(call_id, output));
            }
            Input::Compaction { id, summary } => {
                messages.push(compaction::message(thread_id, summary));
                items.push(compaction::item(id, summary));
            }
            // References were resolved before.
            Input::Echo | Input::Reference { .. } => {}
        }
    }
    require_files(&state.db, project, &refs).await?;
    Ok(out)
}

fn output_item(call_id: &str, output: &str) -> Value {
    json!({"type": "function_call_output", "id": crate::domain::responses::items::call_item_id("fco", call_id),
           "call_id": call_id, "output": output, "status": "completed"})
}

fn new_run(
    req: &CreateResponse,
    thread_id: &str,
    instructions: String,
    tools: Vec<Tool>,
    tool_choice: Value,
    response_format: Value,
) -> Run {
    Run {
        instructions,
        tools,
        temperature: req.temperature,
        top_p: req.top_p,
        max_completion_tokens: req.max_output_tokens,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        response_format,
        reasoning_effort: req
            .reasoning
            .as_ref()
            .and_then(|r| r["effort"].as_str())
            .map(str::to_string),
        max_tool_calls: req.max_tool_calls,
        // `disabled` (the default): the whole context is sent, and a model that cannot take
        // it fails the response; `auto` drops the oldest messages that do not fit.
        truncation_strategy: TruncationStrategy {
            kind: req.truncation.clone().unwrap_or_else(|| "disabled".into()),
            last_messages: None,
        },
        ..Run::queued(thread_id, "", &req.model)
    }
}
