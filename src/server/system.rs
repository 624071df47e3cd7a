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
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(15),
        Duration::from_secs(15),
    );
    let first = futures_util::stream::once(async {
        Ok::<_, Infallible>("data: connected\n\n".to_string())
    });
    let rest = futures_util::stream::unfold(
        (ticker, shutdown),
        |(mut ticker, mut shutdown)| async move {
            if *shutdown.borrow() {
                return None;
            }
            tokio::select! {
                _ = ticker.tick() => Some((Ok(": keep-alive\n\n".to_string()), (ticker, shutdown))),
                _ = shutdown.changed() => None,
            }
        },
    );
    res.stream(futures_util::StreamExt::chain(first, rest));
}
