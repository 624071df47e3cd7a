//! `http:` tools: the URL and body are jq expressions over the input; the JSON response is the
//! result (a non-JSON response is returned as a string).

use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value;

use super::{DEFAULT_TIMEOUT, ToolError, tail, with_timeout};
use crate::config::HttpToolConfig;
use crate::expr::Expr;

pub struct HttpTool {
    method: reqwest::Method,
    url: Expr,
    body: Option<Expr>,
    headers: IndexMap<String, String>,
    timeout: Duration,
    client: reqwest::Client,
}

impl HttpTool {
    pub fn new(cfg: &HttpToolConfig, client: reqwest::Client) -> Result<HttpTool, String> {
        Ok(HttpTool {
            method: reqwest::Method::from_bytes(cfg.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("`{}` is not an HTTP method", cfg.method))?,
            url: Expr::compile(&cfg.url).map_err(|e| format!("url: {e}"))?,
            body: cfg
                .body
                .as_deref()
                .map(Expr::compile)
                .transpose()
                .map_err(|e| format!("body: {e}"))?,
            headers: cfg.headers.clone(),
            timeout: cfg
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            client,
        })
    }

    pub async fn call(&self, input: &Value) -> Result<Value, ToolError> {
        let url = match self.url.eval(input)? {
            Value::String(s) => s,
            other => {
                return Err(ToolError::Failed(format!(
                    "the url expression gave {other}, not a string"
                )));
            }
        };
        let mut req = self
            .client
            .request(self.method.clone(), &url)
            .timeout(self.timeout);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(body) = &self.body {
            req = req.json(&body.eval(input)?);
        }
        with_timeout(self.timeout, async {
            let res = req.send().await.map_err(|e| {
                if e.is_timeout() {
                    ToolError::Timeout(self.timeout.as_millis() as u64)
                } else {
                    ToolError::Failed(format!("request to {url} failed: {e}"))
                }
            })?;
            let status = res.status();
            let text = res
                .text()
                .await
                .map_err(|e| ToolError::Failed(format!("reading the response of {url}: {e}")))?;
            if !status.is_success() {
                return Err(ToolError::Failed(format!(
                    "{url} answered HTTP {}: {}",
                    status.as_u16(),
                    tail(&text, 500)
                )));
            }
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
        .await
    }
}
