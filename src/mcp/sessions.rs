//! Sessions of the MCP transports: which server a session talks to and, for the SSE transport,
//! where its answers go. Sessions idle for longer than [`IDLE`] are forgotten (streamable HTTP
//! clients often never say goodbye).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// How long an unused session is kept.
pub const IDLE: Duration = Duration::from_secs(3600);

struct Session {
    server: String,
    /// The open SSE stream of a session of the SSE transport.
    outbox: Option<mpsc::UnboundedSender<String>>,
    last_used: Instant,
}

/// Every open session.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session with `server`; `outbox` receives its answers (SSE transport).
    pub fn open(&self, server: &str, outbox: Option<mpsc::UnboundedSender<String>>) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.last_used.elapsed() < IDLE);
        sessions.insert(
            id.clone(),
            Session {
                server: server.to_string(),
                outbox,
                last_used: Instant::now(),
            },
        );
        id
    }

    /// The server of a live session (marking it used), if it is one of `server`'s.
    pub fn touch(&self, id: &str, server: &str) -> bool {
        let mut sessions = self.lock();
        match sessions.get_mut(id) {
            Some(s) if s.server == server && s.last_used.elapsed() < IDLE => {
                s.last_used = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Where a session's answers go (SSE transport).
    pub fn outbox(&self, id: &str) -> Option<mpsc::UnboundedSender<String>> {
        let mut sessions = self.lock();
        let s = sessions.get_mut(id)?;
        s.last_used = Instant::now();
        s.outbox.clone()
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_belong_to_their_server() {
        let sessions = Sessions::default();
        let id = sessions.open("a", None);
        assert!(sessions.touch(&id, "a"));
        assert!(!sessions.touch(&id, "b"));
        assert!(sessions.outbox(&id).is_none());
        sessions.close(&id);
        assert!(!sessions.touch(&id, "a"));
    }
}
