//! `GET /api`, the OpenAPI document, and the playground's `/refresh-events` stream.

use std::convert::Infallible;
use std::time::Duration;

use salvo::http::{HeaderValue, header};
use salvo::prelude::*;

use super::state::AppState;

/// The API root.
#[endpoint(tags("system"), operation_id = "getApiRoot")]
pub async fn root(res: &mut Response) {
    res.render(Text::Plain("Hello to the Mastra API!"));
}

/// The playground's hot-reload channel: `data: connected`, then comments to keep it open, until
/// the server shuts down.
#[handler]
pub async fn refresh_events(depot: &mut Depot, res: &mut Response) {
    let shutdown = AppState::get(depot).shutdown.clone();
    event_stream(
        res,
        "data: connected\n\n".into(),
        None,
        shutdown,
        Duration::from_secs(15),
        (),
    );
}

/// Answers with a server-sent event stream: `first`, then every piece `messages` yields, with a
/// keep-alive comment after each quiet `every`; it ends when the server shuts down or `messages`
/// closes. `guard` is dropped when the stream ends (e.g. to close a session).
pub(super) fn event_stream(
    res: &mut Response,
    first: String,
    messages: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    every: Duration,
    guard: impl Send + Sync + 'static,
) {
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let head = futures_util::stream::once(async move { Ok::<_, Infallible>(first) });
    let rest = futures_util::stream::unfold(
        (ticker, shutdown, messages, guard),
        |(mut ticker, mut shutdown, mut messages, guard)| async move {
            if *shutdown.borrow() {
                return None;
            }
            let next = async {
                match messages.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = next => m.map(|m| (Ok(m), (ticker, shutdown, messages, guard))),
                _ = ticker.tick() => Some((Ok(": keep-alive\n\n".to_string()), (ticker, shutdown, messages, guard))),
                _ = shutdown.changed() => None,
            }
        },
    );
    res.stream(futures_util::StreamExt::chain(head, rest));
}
