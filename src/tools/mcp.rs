//! Tools served by external MCP servers (`mcp_clients:`). Each client keeps one session with
//! its server — over a child process's stdio, over streamable HTTP, or (when that fails, as
//! Mastra's client does) over the older HTTP+SSE transport — made at start and made again when
//! it has dropped. Each remote tool becomes a project tool named
//! `<client>_<tool>`, the name Mastra's MCPClient gives it.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::{CallToolRequestParams, Tool as RemoteTool};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::Mutex;
use tracing::Instrument;

use super::ToolError;
use crate::config::McpClientConfig;

/// How long one request to an MCP server may take when the project sets no `timeout_ms`
/// (Mastra's MCPClient default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

type Session = RunningService<RoleClient, ()>;

/// One external MCP server and the session with it.
pub struct McpClient {
    pub name: String,
    config: McpClientConfig,
    timeout: Duration,
    http: reqwest::Client,
    session: Mutex<Option<Arc<Session>>>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("name", &self.name)
            .finish()
    }
}

impl McpClient {
    pub fn new(name: &str, config: &McpClientConfig, http: reqwest::Client) -> McpClient {
        McpClient {
            name: name.to_string(),
            config: config.clone(),
            timeout: config
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            http,
            session: Mutex::new(None),
        }
    }

    /// The server's tools (every page).
    pub async fn list_tools(&self) -> Result<Vec<RemoteTool>, ToolError> {
        let session = self.session().await?;
        self.deadline(session.list_all_tools()).await
    }

    /// Calls the server's tool `tool`; the answer is the MCP `CallToolResult` as the server
    /// sent it (`content`, `structuredContent`, `isError`), as Mastra returns it. A session
    /// that has dropped (the process exited, the HTTP session expired) is made again by the
    /// next call; a call is never sent twice, since the server may have acted on it.
    pub async fn call(&self, tool: &str, input: Value) -> Result<Value, ToolError> {
        let arguments = match input {
            Value::Object(map) => map,
            Value::Null => Default::default(),
            other => {
                return Err(ToolError::InvalidInput(vec![format!(
                    "an MCP tool takes an object, not {other}"
                )]));
            }
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let session = self.session().await?;
        let result = self.deadline(session.call_tool(params)).await?;
        serde_json::to_value(result).map_err(|e| ToolError::Failed(e.to_string()))
    }

    /// Closes the session, ending the server process of a stdio client.
    pub async fn close(&self) {
        if let Some(session) = self.session.lock().await.take()
            && let Ok(mut session) = Arc::try_unwrap(session)
        {
            let _ = session.close_with_timeout(Duration::from_secs(5)).await;
        }
    }

    /// The open session, connecting first when there is none or it has ended (the transport
    /// closes when a stdio server exits or an HTTP session is refused).
    async fn session(&self) -> Result<Arc<Session>, ToolError> {
        let mut held = self.session.lock().await;
        if let Some(session) = held.as_ref()
            && !session.is_closed()
            && !session.is_transport_closed()
        {
            return Ok(session.clone());
        }
        let session = Arc::new(
            tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| self.unreachable(format!("no answer within {:?}", self.timeout)))??,
        );
        *held = Some(session.clone());
        Ok(session)
    }

    async fn connect(&self) -> Result<Session, ToolError> {
        if let Some(program) = &self.config.command {
            let mut command = tokio::process::Command::new(program);
            command
                .args(&self.config.args)
                .envs(&self.config.env)
                .kill_on_drop(true);
            let (transport, stderr) = TokioChildProcess::builder(command)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| self.unreachable(format!("`{program}` could not start: {e}")))?;
            if let Some(stderr) = stderr {
                // The server's own diagnostics go to the log, under the client's name.
                let client = self.name.clone();
                let forward = async move {
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::info!(mcp_client = %client, "{line}");
                    }
                };
                tokio::spawn(forward.instrument(tracing::Span::current()));
            }
            ().serve(transport)
                .await
                .map_err(|e| self.unreachable(e.to_string()))
        } else if let Some(url) = &self.config.url {
            let headers = self.headers()?;
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(
                    headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
            let transport = StreamableHttpClientTransport::with_client(self.http.clone(), config);
            let streamable = match ().serve(transport).await {
                Ok(session) => return Ok(session),
                Err(e) => e.to_string(),
            };
            let (sink, stream) = sse::connect(&self.http, url, &headers, &self.name)
                .await
                .map_err(|sse| {
                    self.unreachable(format!("streamable HTTP: {streamable}; HTTP+SSE: {sse}"))
                })?;
            ().serve((sink, stream))
                .await
                .map_err(|e| self.unreachable(e.to_string()))
        } else {
            Err(ToolError::Config(format!(
                "MCP client `{}` has neither `command` nor `url`",
                self.name
            )))
        }
    }

    fn headers(&self) -> Result<HeaderMap, ToolError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.config.headers {
            let bad = |e: String| ToolError::Config(format!("header `{name}`: {e}"));
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?,
                HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?,
            );
        }
        Ok(headers)
    }

    async fn deadline<T, E: std::fmt::Display>(
        &self,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ToolError> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(ToolError::Failed(format!(
                "MCP server `{}`: {e}",
                self.name
            ))),
            Err(_) => Err(ToolError::Timeout(self.timeout.as_millis() as u64)),
        }
    }

    fn unreachable(&self, why: String) -> ToolError {
        ToolError::Failed(format!(
            "MCP server `{}` is not reachable: {why}",
            self.name
        ))
    }
}

/// The project key of a client's tool.
pub fn tool_key(client: &str, tool: &str) -> String {
    format!("{client}_{tool}")
}

/// Connects to every client at once; a client that cannot be reached is logged and has no
/// tools, and the server starts without them.
pub async fn connect_all(
    clients: &indexmap::IndexMap<String, McpClientConfig>,
    http: &reqwest::Client,
) -> Vec<(Arc<McpClient>, Vec<RemoteTool>)> {
    let pending = clients.iter().map(|(name, config)| {
        let client = Arc::new(McpClient::new(name, config, http.clone()));
        async move {
            let listed = match client.list_tools().await {
                Ok(listed) => {
                    tracing::info!(mcp_client = %client.name, tools = listed.len(), "connected to MCP server");
                    listed
                }
                Err(e) => {
                    tracing::warn!(mcp_client = %client.name, error = %e, "MCP server not reachable: its tools are not available");
                    Vec::new()
                }
            };
            (client, listed)
        }
    });
    futures_util::future::join_all(pending).await
}

/// The HTTP+SSE transport of MCP 2024-11-05, which rmcp does not offer as a client: a GET opens
/// the event stream, whose first `endpoint` event names the URL to POST messages to, and the
/// answers arrive on the stream.
mod sse {
    use std::convert::Infallible;

    use futures_util::{Sink, Stream, StreamExt};
    use reqwest::header::{ACCEPT, HeaderMap};
    use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
    use sse_stream::SseStream;
    use tokio::task::AbortHandle;

    /// Ends the stream reader when the session lets go of the stream.
    struct AbortOnDrop(AbortHandle);

    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    /// Opens the stream and waits for its endpoint; the pair is rmcp's sink/stream transport.
    pub async fn connect(
        http: &reqwest::Client,
        url: &str,
        headers: &HeaderMap,
        client: &str,
    ) -> Result<
        (
            impl Sink<ClientJsonRpcMessage, Error = Infallible> + Send + Unpin + 'static,
            impl Stream<Item = ServerJsonRpcMessage> + Send + Unpin + 'static,
        ),
        String,
    > {
        let response = http
            .get(url)
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("GET answered {}", response.status()));
        }
        let mut events = SseStream::from_bytes_stream(response.bytes_stream());
        let endpoint = loop {
            match events.next().await {
                Some(Ok(e)) if e.event.as_deref() == Some("endpoint") => {
                    break e.data.unwrap_or_default();
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the event stream ended before naming its endpoint".into()),
            }
        };
        let endpoint = reqwest::Url::parse(url)
            .and_then(|base| base.join(endpoint.trim()))
            .map_err(|e| format!("the endpoint `{endpoint}`: {e}"))?;

        let (tx, rx) = tokio::sync::mpsc::channel::<ServerJsonRpcMessage>(64);
        let name = client.to_string();
        let reader = tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                if !matches!(event.event.as_deref(), None | Some("message")) {
                    continue;
                }
                let Some(data) = event.data else { continue };
                match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                    Ok(message) => {
                        if tx.send(message).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(mcp_client = %name, error = %e, "ignored a message that is not MCP JSON-RPC");
                    }
                }
            }
        });
        let abort = reader.abort_handle();
        let stream = Box::pin(futures_util::stream::unfold(
            (rx, AbortOnDrop(reader.abort_handle())),
            |(mut rx, guard)| async move { rx.recv().await.map(|m| (m, (rx, guard))) },
        ));

        let (http, headers, name) = (http.clone(), headers.clone(), client.to_string());
        let sink = Box::pin(futures_util::sink::unfold(
            (),
            move |(), message: ClientJsonRpcMessage| {
                let post = http
                    .post(endpoint.clone())
                    .headers(headers.clone())
                    .json(&message)
                    .send();
                let (abort, name) = (abort.clone(), name.clone());
                async move {
                    // A message the server did not take ends the session (by ending the stream),
                    // so that a request waiting for its answer fails now instead of timing out.
                    let refused = match post.await {
                        Ok(r) if r.status().is_success() => None,
                        Ok(r) => Some(format!("the server answered {}", r.status())),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(why) = refused {
                        tracing::warn!(mcp_client = %name, error = %why, "a message was not delivered; the session ends");
                        abort.abort();
                    }
                    Ok::<(), Infallible>(())
                }
            },
        ));
        Ok((sink, stream))
    }
}
