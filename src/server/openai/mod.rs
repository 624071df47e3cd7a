//! The OpenAI-compatible API under `/v1`, for the many tools that speak it (the `openai` SDKs,
//! LangChain, Open WebUI): `GET /v1/models`, `POST /v1/chat/completions` (whole or streamed as
//! server-sent events) and `POST /v1/embeddings`. A chat completion is an agent call: of the
//! agent `agent:<id>` (its instructions, tools and memory), or of a bare agent over the model
//! named. The request's `tools` are the call's client tools, so their calls come back to the
//! client unexecuted, as OpenAI's API does. Errors have OpenAI's shape ([`openai_errors`]).

mod request;
mod response;

use salvo::http::header::CACHE_CONTROL;
use salvo::http::{HeaderValue, ResBody};
use salvo::prelude::*;
use serde_json::Value;

use super::ApiError;
use super::agents::{RunningCall, stream_call};
use super::request::{json_object, runtime_context};
use super::state::AppState;
use crate::agent::options::CallOptions;
use request::{AGENT_PREFIX, Target};
use response::Completion;

/// Header that names the memory thread of an agent call (else `user` does).
pub const THREAD_HEADER: &str = "x-edgestra-thread";

/// The `/v1` routes.
pub fn router() -> Router {
    Router::with_path("v1")
        .push(Router::with_path("models").get(models))
        .push(Router::with_path("chat/completions").post(chat_completions))
        .push(Router::with_path("embeddings").post(embeddings))
}

/// The project's models (chat and embedding) and every agent as `agent:<id>`.
#[handler]
async fn models(depot: &mut Depot) -> Json<Value> {
    let state = AppState::get(depot);
    let created = response::now();
    let mut data: Vec<Value> = state
        .project
        .models
        .keys()
        .map(|name| response::model_entry(name, created))
        .collect();
    data.extend(
        state
            .agents
            .iter()
            .map(|a| response::model_entry(&format!("{AGENT_PREFIX}{}", a.key), created)),
    );
    Json(serde_json::json!({"object": "list", "data": data}))
}

/// A chat completion: the call runs as an agent call; its answer or its chunks are OpenAI's.
#[handler]
async fn chat_completions(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let body = json_object(req, depot).await?;
    let thread = req.header::<String>(THREAD_HEADER);
    let mut chat = request::chat_request(&body, thread)?;
    let agent = match &chat.target {
        Target::Agent(id) => state.agents.get(id)?.clone(),
        Target::Model(name) => state.agents.model(name)?.clone(),
    };
    // A thread holds the conversation of an agent with memory: the client's copy of earlier
    // turns is left to it, and only the new turn is added.
    if let (Some((thread, resource)), Some(_)) = (&chat.memory, &agent.memory_config) {
        let turn = request::new_turn(&chat.call["messages"]);
        chat.call.insert("messages".into(), turn);
        chat.call
            .insert("threadId".into(), Value::String(thread.clone()));
        chat.call
            .insert("resourceId".into(), Value::String(resource.clone()));
    }
    let defaults = if chat.stream {
        &agent.default_stream_options
    } else {
        &agent.default_generate_options
    };
    let opts = CallOptions::from_body(&agent, &chat.call, defaults, runtime_context(depot))?;
    let completion = Completion {
        id: format!("chatcmpl-{}", opts.run_id),
        model: chat.model,
        created: response::now(),
        client_tools: chat.client_tools,
    };
    if !chat.stream {
        let result = state.agents.call(&agent, &opts, None).await?;
        res.render(Json(completion.answer(&result)));
        return Ok(());
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let call = RunningCall::spawn(move |events| async move {
        Ok(state.agents.call(&agent, &opts, Some(events)).await?)
    });
    let framer = completion.framer(chat.include_usage);
    stream_call(res, call, Some("text/event-stream"), framer).await
}

/// Embeddings of one text or many, with an embedding model of the project.
#[handler]
async fn embeddings(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let body = json_object(req, depot).await?;
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        None | Some(Value::Null) => return Err(ApiError::bad_request("`model` is required")),
        Some(_) => return Err(ApiError::bad_request("`model` must be a string")),
    };
    let base64 = match body.get("encoding_format").and_then(|v| v.as_str()) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`encoding_format` must be float or base64, not `{other}`"
            )));
        }
    };
    let texts = request::embedding_inputs(body.get("input"))?;
    let embedder = state.models.embedder(&model).ok_or_else(|| {
        ApiError::not_found(format!(
            "The model `{model}` does not exist or does not embed"
        ))
    })?;
    if let Some(d) = body.get("dimensions").filter(|d| !d.is_null()) {
        let wanted = d.as_u64();
        let native = embedder.dimensions() as u64;
        // A remote embedder reports its size only after its first answer (0 until then).
        if wanted.is_none() || (native != 0 && wanted != Some(native)) {
            return Err(ApiError::bad_request(format!(
                "`dimensions`: `{model}` makes vectors of {native} dimensions and cannot shorten them"
            )));
        }
    }
    let (vectors, tokens) = embedder.embed_counted(texts).await?;
    Ok(Json(response::embeddings(
        &model,
        &vectors,
        base64,
        tokens.unwrap_or(0),
    )))
}

/// Whether `path` is under the OpenAI-compatible API.
pub fn is_openai_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Gives every error answer under `/v1` OpenAI's body (`{"error": {message, type, …}}`),
/// whoever made it: a handler, the auth or body-limit checks, or the catcher. Runs around
/// everything else, so the error mapping of the rest of the server stays the one place that
/// decides statuses and messages.
#[handler]
pub async fn openai_errors(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    if !is_openai_path(req.uri().path()) {
        return;
    }
    ctrl.call_next(req, depot, res).await;
    let Some(status) = res
        .status_code
        .filter(|s| s.is_client_error() || s.is_server_error())
    else {
        return;
    };
    let error = match &res.body {
        ResBody::Once(bytes) => serde_json::from_slice::<Value>(bytes).ok().and_then(|v| {
            let message = v.get("error")?.as_str()?;
            let error = ApiError::new(status, message);
            Some(match v.get("details") {
                Some(d) => error.with_details(d.clone()),
                None => error,
            })
        }),
        _ => None,
    };
    if let Some(error) = error {
        render_error(res, &error);
    }
}

/// Answers `error` in OpenAI's shape (replacing any body).
pub fn render_error(res: &mut Response, error: &ApiError) {
    res.replace_body(ResBody::None);
    res.status_code(error.status);
    res.render(Json(response::error_body(error)));
}
