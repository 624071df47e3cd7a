//! `command:` tools: run a program with the input as JSON on stdin; its stdout must be JSON.
//! The process is killed when it runs past its timeout or the caller goes away.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{DEFAULT_TIMEOUT, ToolContext, ToolError, tail, with_timeout};
use crate::config::CommandToolConfig;

pub struct CommandTool {
    cfg: CommandToolConfig,
    timeout: Duration,
}

impl CommandTool {
    pub fn new(cfg: &CommandToolConfig) -> CommandTool {
        CommandTool {
            cfg: cfg.clone(),
            timeout: cfg
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
        }
    }

    pub async fn run(&self, input: &Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let program = &self.cfg.program;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.cfg.args)
            .envs(&self.cfg.env)
            .env(
                "EDGESTRA_RUNTIME_CONTEXT",
                Value::Object(ctx.runtime_context.clone()).to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(run_id) = &ctx.run_id {
            cmd.env("EDGESTRA_RUN_ID", run_id);
        }
        if let Some(dir) = &self.cfg.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| ToolError::Failed(format!("cannot start `{program}`: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let payload = serde_json::to_vec(input).expect("JSON values serialise");
        with_timeout(self.timeout, async move {
            // Feed stdin and drain both pipes concurrently so a chatty program cannot deadlock.
            let write = async {
                // A program that exits without reading its input is not an error in itself.
                let _ = stdin.write_all(&payload).await;
                drop(stdin);
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (_, o, e, status) = tokio::join!(
                write,
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err),
                child.wait()
            );
            o.and(e).map_err(|e| {
                ToolError::Failed(format!("reading the output of `{program}`: {e}"))
            })?;
            let status =
                status.map_err(|e| ToolError::Failed(format!("waiting for `{program}`: {e}")))?;
            let stderr_text = String::from_utf8_lossy(&err);
            if !status.success() {
                let code = status
                    .code()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "a signal".into());
                return Err(ToolError::Failed(format!(
                    "`{program}` exited with {code}: {}",
                    tail(&stderr_text, 1000)
                )));
            }
            serde_json::from_slice(&out).map_err(|e| {
                ToolError::Failed(format!(
                    "`{program}` did not print JSON ({e}): {}",
                    tail(&String::from_utf8_lossy(&out), 300)
                ))
            })
        })
        .await
    }
}
