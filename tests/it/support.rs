//! Starting servers and talking to them.

use std::path::{Path, PathBuf};

use edgestra::server::{self, RunningServer, ServeOptions};
use reqwest::header::HeaderMap;
use serde_json::Value;

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    server: Option<RunningServer>,
    data_dir: PathBuf,
    yaml: String,
    api_key: Option<String>,
    metrics: bool,
    _dir: Option<tempfile::TempDir>,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error text in {}", self.text))
            .to_string()
    }
}

impl TestServer {
    pub async fn start(yaml: &str) -> TestServer {
        Self::start_with(yaml, None).await
    }

    pub async fn start_with(yaml: &str, api_key: Option<&str>) -> TestServer {
        Self::start_full(yaml, api_key, false).await
    }

    /// With `--metrics` (and `api_key`, if any).
    pub async fn start_metered(yaml: &str, api_key: Option<&str>) -> TestServer {
        Self::start_full(yaml, api_key, true).await
    }

    async fn start_full(yaml: &str, api_key: Option<&str>, metrics: bool) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let mut s = Self::boot(yaml, &data_dir, api_key.map(String::from), metrics).await;
        s._dir = Some(dir);
        s
    }

    async fn boot(
        yaml: &str,
        data_dir: &Path,
        api_key: Option<String>,
        metrics: bool,
    ) -> TestServer {
        let project =
            edgestra::config::load_str(yaml, "test project").expect("test project is valid");
        let opts = ServeOptions {
            host: "127.0.0.1".into(),
            port: 0,
            data_dir: data_dir.to_path_buf(),
            api_key: api_key.clone(),
            dev: false,
            metrics,
        };
        let server = server::start(project, opts).await.expect("server starts");
        TestServer {
            base: format!("http://{}", server.addr),
            client: reqwest::Client::new(),
            server: Some(server),
            data_dir: data_dir.to_path_buf(),
            yaml: yaml.to_string(),
            api_key,
            metrics,
            _dir: None,
        }
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.server.take().unwrap().stop().await;
        let mut fresh = Self::boot(
            &self.yaml,
            &self.data_dir,
            self.api_key.clone(),
            self.metrics,
        )
        .await;
        self.base = fresh.base.clone();
        self.server = fresh.server.take();
    }

    /// Stops the server (its background writers finish) and keeps the data directory.
    pub async fn halt(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request reaches the server");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(self.client.post(self.url(path)).body(body)).await
    }
}

/// Polls `f` until it returns `Some`, for up to 5 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..100 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

pub const TOOLS_PROJECT: &str = r#"
tools:
  calculator: { builtin: calculator }
  clock: { id: clock-tool, builtin: datetime }
  weatherTool:
    description: Deterministic weather for a city
    input_schema:
      type: object
      properties: { city: { type: string, minLength: 1 } }
      required: [city]
      additionalProperties: false
    output_schema:
      type: object
      properties: { city: { type: string }, temperatureC: { type: number }, conditions: { type: string } }
    jq: '{city: .city, temperatureC: ((.city | explode | add) % 35), conditions: (if (.city | length) % 2 == 0 then "Sunny" else "Cloudy" end)}'
  echoContext:
    description: Prints its runtime context
    command: { program: sh, args: ["-c", "cat > /dev/null; printf '%s' \"$EDGESTRA_RUNTIME_CONTEXT\""] }
  slow:
    description: Sleeps too long
    command: { program: sh, args: ["-c", "sleep 5; echo {}"], timeout_ms: 300 }
  failing:
    description: Exits with an error
    command: { program: sh, args: ["-c", "echo 'disk on fire' >&2; exit 3"] }
  chatty:
    description: Prints something that is not JSON
    command: { program: sh, args: ["-c", "echo hello"] }
  doubler:
    description: Doubles its input via a JSON program
    command: { program: sh, args: ["-c", "read line; n=$(printf '%s' \"$line\" | sed 's/[^0-9]//g'); echo \"{\\\"value\\\": $((n * 2))}\""] }
"#;

/// Percent-encodes a query component.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
